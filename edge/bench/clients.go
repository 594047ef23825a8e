package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/chasqui/chasqui/edge/client"
	opsv1 "github.com/chasqui/chasqui/gen/chasqui/ops/v1"
)

// clientCallers is how many callers share one client in the client-library
// figures: an instrument host's acquisition threads.
const clientCallers = 16

// pythonBin is Debian's interpreter, which has python3-grpcio.
const pythonBin = "/usr/bin/python3"

// pythonBenchScript is the Python side, relative to the repository root.
const pythonBenchScript = "clients/python/tools/bench_submit.py"

type clientsResult struct {
	goRate, pyRate float64
	pyNoStoreRate  float64 // diagnosis: the Python client's own ceiling
	pyErr          error   // the Python figure could not be made (no interpreter, no grpcio)
}

func (r clientsResult) print() {
	fmt.Printf("BENCH go_client_submit_tx_per_s %.0f tx/s (edge/client, %d goroutines on one client, one transaction per call)\n", r.goRate, clientCallers)
	if r.pyErr != nil {
		fmt.Fprintf(os.Stderr, "BENCH python_submit_tx_per_s skipped (%v; ./scripts/check-python.sh installs Debian's python3-grpcio)\n", r.pyErr)
		return
	}
	fmt.Printf("BENCH python_submit_tx_per_s %.0f tx/s (clients/python, one process, %d threads on one client, one transaction per call)\n", r.pyRate, clientCallers)
	fmt.Printf("BENCH python_submit_nostore_tx_per_s %.0f tx/s (diagnosis: the same against an edge answering without storing)\n", r.pyNoStoreRate)
}

// clientsBench measures the instrument client libraries, each on a fresh
// durable edge (in-process, loopback TCP) with the retry policy on: the Go
// client from goroutines, the Python client from one process's threads.
func clientsBench(dir string, d time.Duration, logger *slog.Logger) (clientsResult, error) {
	var r clientsResult
	eg, err := startEdge(dir+"/go", 0, nil, storeDurable, logger)
	if err != nil {
		return r, err
	}
	defer eg.close()
	c, err := client.Dial(context.Background(), eg.addr)
	if err != nil {
		return r, err
	}
	defer c.Close()
	call := func(int) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			_, err := c.StartObservation(ctx, &opsv1.Observation{Instrument: "BENCH", ObsUnit: "go-bench"})
			return 1, err
		}
	}
	if _, err := measureN(clientCallers, time.Second, call); err != nil { // warm-up
		return r, err
	}
	res, err := measureN(clientCallers, d, call)
	if err != nil {
		return r, err
	}
	r.goRate = res.rate

	ep, err := startEdge(dir+"/python", 0, nil, storeDurable, logger)
	if err != nil {
		return r, err
	}
	defer ep.close()
	if r.pyRate, r.pyErr = pythonSubmit(ep.addr, d); r.pyErr != nil {
		return r, nil
	}
	en, err := startEdge(dir+"/python-nostore", 0, nil, storeNone, logger)
	if err != nil {
		return r, err
	}
	defer en.close()
	r.pyNoStoreRate, r.pyErr = pythonSubmit(en.addr, d)
	return r, nil
}

// pythonSubmit runs the Python bench script against addr and returns its rate.
func pythonSubmit(addr string, d time.Duration) (float64, error) {
	if _, err := os.Stat(pythonBin); err != nil {
		return 0, err
	}
	script, err := findUp(pythonBenchScript)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pythonBin, script, "--addr", addr,
		"--threads", strconv.Itoa(clientCallers), "--duration", strconv.FormatFloat(d.Seconds(), 'f', -1, 64))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("%s: %w\n%s", pythonBenchScript, err, stderr.Bytes())
	}
	var res struct {
		TxPerS float64 `json:"tx_per_s"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("%s printed %q: %w", pythonBenchScript, out, err)
	}
	return res.TxPerS, nil
}

// findUp finds rel in the working directory or one above it (make bench
// runs in edge/).
func findUp(rel string) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		if d == filepath.Dir(d) {
			return "", errors.New(rel + " not found above " + wd)
		}
	}
}
