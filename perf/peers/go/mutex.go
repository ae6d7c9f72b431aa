// perf/peers/go/mutex.go: the mutex benchmark's Go peer: F goroutines under
// GOMAXPROCS = workers each lock one sync.Mutex, increment a shared counter
// and unlock, n / F times; millions of operations per second, for F = 64
// and F = workers (perf/mutex.c measures weft the same way).
package main

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

func benchMutex(a args) {
	for _, w := range a.workers {
		runtime.GOMAXPROCS(w)
		counts := []int{64}
		if w != 64 {
			counts = append(counts, w)
		}
		for _, f := range counts {
			n := a.n / int64(f) * int64(f)
			per := n / int64(f)
			mops := make([]float64, 0, a.runs)
			for r := -1; r < a.runs; r++ {
				var mu sync.Mutex
				var counter int64
				var wg sync.WaitGroup
				t0 := time.Now()
				for g := 0; g < f; g++ {
					wg.Add(1)
					go func() {
						for i := int64(0); i < per; i++ {
							mu.Lock()
							counter++
							mu.Unlock()
						}
						wg.Done()
					}()
				}
				wg.Wait()
				el := time.Since(t0).Seconds()
				if counter != n {
					fail(a.bench, "counter %d, want %d", counter, n)
				}
				if r >= 0 {
					mops = append(mops, float64(n)/el/1e6)
				}
			}
			median, _, _ := stats(mops)
			emit(a, result{impl: fmt.Sprintf("go_mutex_f%d", f), workers: w, n: n,
				unit: "Mops/s", runs: a.runs, samples: mops,
				extra: [][2]interface{}{{"fibers", f}, {"ns_per_op", 1e3 / median}}})
		}
	}
}
