// perf/peers/go/spawn.go: the spawn benchmark's Go peer: n goroutines with
// an empty body (a WaitGroup.Done, Go's way to be joined), then Wait, on
// GOMAXPROCS = each worker count.
package main

import (
	"runtime"
	"sync"
	"time"
)

func benchSpawn(a args) {
	for _, w := range a.workers {
		runtime.GOMAXPROCS(w)
		ns := make([]float64, a.runs)
		for r := -1; r < a.runs; r++ {
			var wg sync.WaitGroup
			wg.Add(int(a.n))
			t0 := time.Now()
			for i := int64(0); i < a.n; i++ {
				go func() { wg.Done() }()
			}
			wg.Wait()
			if r >= 0 {
				ns[r] = time.Since(t0).Seconds() * 1e9 / float64(a.n)
			}
		}
		emit(a, result{impl: "go_goroutine", workers: w, n: a.n, unit: "ns/task", runs: a.runs, samples: ns})
	}
}
