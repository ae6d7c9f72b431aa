// perf/peers/go/switch.go: the switch benchmark's Go peer: two goroutines
// on GOMAXPROCS=1, each calling runtime.Gosched() n times, so that each
// yield hands the one P to the other goroutine.
package main

import (
	"runtime"
	"sync"
	"time"
)

func benchSwitch(a args) {
	runtime.GOMAXPROCS(1)
	secs := make([]float64, a.runs)
	for r := -1; r < a.runs; r++ {
		var wg sync.WaitGroup
		wg.Add(2)
		t0 := time.Now()
		for k := 0; k < 2; k++ {
			go func() {
				for i := int64(0); i < a.n; i++ {
					runtime.Gosched()
				}
				wg.Done()
			}()
		}
		wg.Wait()
		if r >= 0 {
			secs[r] = time.Since(t0).Seconds()
		}
	}
	ns := make([]float64, a.runs)
	for r := range secs {
		ns[r] = secs[r] * 1e9 / float64(a.n) / 2
	}
	median, _, _ := stats(ns)
	emit(a, result{impl: "go_gosched", workers: 1, n: a.n, unit: "ns/switch", runs: a.runs,
		samples: ns, extra: [][2]interface{}{{"round_trip_ns", 2 * median}}})
}
