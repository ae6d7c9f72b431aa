// perf/peers/go/sleepers.go: the sleepers benchmark's Go peer: n goroutines
// each time.Sleep(1 s), then a WaitGroup.Wait; wall time from the first
// spawn to the last done, and the peak RSS (VmHWM, reset before each run)
// less the RSS before the first run, per goroutine. The first run is
// reported apart ("cold": true), as in perf/sleepers.c.
package main

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func statusKiB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, field+":") {
			v, _ := strconv.ParseInt(strings.Fields(line[len(field)+1:])[0], 10, 64)
			return v
		}
	}
	return -1
}

func resetPeak(bench string) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		fail(bench, "cannot reset the peak RSS: %v", err)
	}
}

func benchSleepers(a args) {
	for _, w := range a.workers {
		runtime.GOMAXPROCS(w)
		runtime.GC()
		baseline := statusKiB("VmRSS")
		wall := make([]float64, a.runs+1)
		kib := make([]float64, a.runs+1)
		peak := make([]int64, a.runs+1)
		for r := 0; r <= a.runs; r++ {
			resetPeak(a.bench)
			var wg sync.WaitGroup
			wg.Add(int(a.n))
			t0 := time.Now()
			for i := int64(0); i < a.n; i++ {
				go func() {
					time.Sleep(time.Second)
					wg.Done()
				}()
			}
			wg.Wait()
			wall[r] = time.Since(t0).Seconds()
			peak[r] = statusKiB("VmHWM")
			kib[r] = float64(peak[r]-baseline) / float64(a.n)
		}
		emit(a, result{impl: "go", workers: w, n: a.n, unit: "s", runs: 1, samples: wall[:1],
			extra: [][2]interface{}{{"cold", true}, {"rss_kib_per_task", kib[0]},
				{"peak_rss_mib", float64(peak[0]) / 1024}}})
		warmPeak := int64(0)
		for _, p := range peak[1:] {
			if p > warmPeak {
				warmPeak = p
			}
		}
		medianKiB, _, _ := stats(kib[1:])
		emit(a, result{impl: "go", workers: w, n: a.n, unit: "s", runs: a.runs, samples: wall[1:],
			extra: [][2]interface{}{{"cold", false}, {"rss_kib_per_task", medianKiB},
				{"peak_rss_mib", float64(warmPeak) / 1024}}})
	}
}
