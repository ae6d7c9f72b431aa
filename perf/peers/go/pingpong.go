// perf/peers/go/pingpong.go: the pingpong benchmark's Go peer: the main
// goroutine sends an int64 on one unbuffered channel, an echo goroutine
// sends it back on another, n round trips per run, under GOMAXPROCS =
// workers; ns per round trip (perf/pingpong.c measures weft the same way).
package main

import (
	"runtime"
	"time"
)

func benchPingpong(a args) {
	for _, w := range a.workers {
		runtime.GOMAXPROCS(w)
		ns := make([]float64, 0, a.runs)
		for r := -1; r < a.runs; r++ {
			ping := make(chan int64)
			pong := make(chan int64)
			done := make(chan struct{})
			go func() {
				for v := range ping {
					pong <- v
				}
				close(done)
			}()
			t0 := time.Now()
			for i := int64(0); i < a.n; i++ {
				ping <- i
				if v := <-pong; v != i {
					fail(a.bench, "round trip %d came back as %d", i, v)
				}
			}
			el := time.Since(t0).Seconds()
			close(ping)
			<-done
			if r >= 0 {
				ns = append(ns, el*1e9/float64(a.n))
			}
		}
		emit(a, result{impl: "go_chan", workers: w, n: a.n, unit: "ns/round trip",
			runs: a.runs, samples: ns})
	}
}
