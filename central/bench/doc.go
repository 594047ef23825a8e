// Package bench measures central's commit path against the physical limit
// (plain pgx CopyFrom of the same rows into the same table), in one run:
//
//	cd central && go test -run '^$' -bench . -benchtime 1x -count 1 ./bench/
//
// It prints `BENCH <name> <value> <unit>` lines.
package bench
