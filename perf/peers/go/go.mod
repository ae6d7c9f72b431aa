module weft/perf/peers/go

go 1.19
