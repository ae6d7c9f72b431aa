// perf/peers/go: the Go peers of weft's benchmarks, one program for all
// (go has no per-file mains): weft-perf-go --bench switch|spawn|sleepers|pingpong|mutex
// [--workers 1,2] [--n N] [--runs R] [--json] [--quick]. It prints the same result
// lines as the C benchmarks (perf/bench.h), so perf/run collects them with
// the rest. It uses the standard library only and never touches the
// network.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
)

type args struct {
	bench   string
	workers []int
	n       int64
	runs    int
	json    bool
	quick   bool
}

// result is one output line; the required keys first, then the extras.
type result struct {
	impl    string
	workers int
	n       int64
	unit    string
	runs    int
	samples []float64
	extra   [][2]interface{}
}

func parseCount(s string) (int64, error) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil && v > 0 {
		return v, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 1 || f != float64(int64(f)) {
		return 0, fmt.Errorf("want a positive integer (1000000 or 1e6), not %q", s)
	}
	return int64(f), nil
}

func parseArgs() args {
	var a args
	var workers, n string
	flag.StringVar(&a.bench, "bench", "", "switch, spawn, sleepers, pingpong or mutex")
	flag.StringVar(&workers, "workers", "", "worker counts, such as 1,2 (GOMAXPROCS)")
	flag.StringVar(&n, "n", "", "problem size (default per benchmark)")
	flag.IntVar(&a.runs, "runs", 5, "measured runs after one warm-up run")
	flag.BoolVar(&a.json, "json", false, "one JSON object per line")
	flag.BoolVar(&a.quick, "quick", false, "tiny n, only to show that it works")
	flag.Parse()
	defaults := map[string]int64{"switch": 10000000, "spawn": 1000000, "sleepers": 1000000}
	quick := map[string]int64{"switch": 100000, "spawn": 10000, "sleepers": 1000}
	defaults["pingpong"], quick["pingpong"] = 2000000, 20000
	defaults["mutex"], quick["mutex"] = 20000000, 100000
	def, ok := defaults[a.bench]
	if !ok || flag.NArg() != 0 || a.runs < 1 {
		flag.Usage()
		os.Exit(2)
	}
	a.n = def
	if a.quick {
		a.n = quick[a.bench]
	}
	if n != "" {
		v, err := parseCount(n)
		if err != nil {
			fail(a.bench, "--n: %v", err)
		}
		a.n = v
	}
	cpus := runtime.NumCPU()
	if workers == "" {
		switch a.bench {
		case "switch":
			a.workers = []int{1}
		case "sleepers", "mutex":
			a.workers = []int{cpus}
		default:
			for w := 1; w < cpus; w *= 2 {
				a.workers = append(a.workers, w)
			}
			a.workers = append(a.workers, cpus)
		}
	} else {
		for _, s := range strings.Split(workers, ",") {
			v, err := parseCount(s)
			if err != nil || v > 1024 {
				fail(a.bench, "--workers: want counts 1..1024 such as 1,2, not %q", workers)
			}
			a.workers = append(a.workers, int(v))
		}
	}
	return a
}

func fail(bench string, format string, v ...interface{}) {
	fmt.Fprintf(os.Stderr, "weft-perf-go %s: FAILED: %s\n", bench, fmt.Sprintf(format, v...))
	os.Exit(1)
}

func note(bench string, format string, v ...interface{}) {
	fmt.Fprintf(os.Stderr, "weft-perf-go %s: %s\n", bench, fmt.Sprintf(format, v...))
}

func stats(v []float64) (median, min, max float64) {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	k := len(s)
	median = s[k/2]
	if k%2 == 0 {
		median = (s[k/2-1] + s[k/2]) / 2
	}
	return median, s[0], s[k-1]
}

func emit(a args, r result) {
	median, min, max := stats(r.samples)
	if a.json {
		var b strings.Builder
		field := func(k string, v interface{}) {
			j, _ := json.Marshal(v)
			fmt.Fprintf(&b, ", %q: %s", k, j)
		}
		fmt.Fprintf(&b, "{\"bench\": %q", a.bench)
		field("impl", r.impl)
		field("workers", r.workers)
		field("n", r.n)
		field("unit", r.unit)
		field("median", median)
		field("min", min)
		field("max", max)
		field("runs", r.runs)
		for _, kv := range r.extra {
			field(kv[0].(string), kv[1])
		}
		b.WriteString("}")
		fmt.Println(b.String())
		return
	}
	fmt.Printf("%-9s %-18s workers %-3d n %-11d %10.4g %-9s (min %.4g, max %.4g, %d runs)",
		a.bench, r.impl, r.workers, r.n, median, r.unit, min, max, r.runs)
	for _, kv := range r.extra {
		fmt.Printf("  %s=%v", kv[0], kv[1])
	}
	fmt.Println()
}

func main() {
	a := parseArgs()
	note(a.bench, "%s, %d CPUs, n %d, %d runs after one warm-up run", runtime.Version(), runtime.NumCPU(), a.n, a.runs)
	switch a.bench {
	case "switch":
		benchSwitch(a)
	case "spawn":
		benchSpawn(a)
	case "sleepers":
		benchSleepers(a)
	case "pingpong":
		benchPingpong(a)
	case "mutex":
		benchMutex(a)
	}
}
