package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// errNoRedis: redis-server is not on PATH; the figure is skipped.
var errNoRedis = errors.New("redis-server not found on PATH")

// redisAOFAlways is the classic alternative to the edge queue: a Redis list
// with appendonly yes and appendfsync always (Redis fsyncs the AOF before
// answering each event-loop round, its own group commit), the same number
// of clients as the Submit figure, each LPUSHing the same serialized
// transaction bytes the edge queue stores (a single-observation transaction
// with the edge's fields stamped). redis-server runs on a free loopback
// port with its files in a temp dir under dir, and is stopped after.
func redisAOFAlways(dir string, clients int, d time.Duration) (result, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return result{}, errNoRedis
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	port := lis.Addr().(*net.TCPAddr).Port
	_ = lis.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
		"--protected-mode", "yes", "--logfile", "")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), PoolSize: clients, MinIdleConns: clients})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case e := <-exited:
			exited <- e
			return result{}, fmt.Errorf("redis-server exited: %v", e)
		default:
		}
		if time.Now().After(deadline) {
			return result{}, fmt.Errorf("redis-server on port %d not answering: %w", port, err)
		}
		time.Sleep(20 * time.Millisecond) // waiting for a child process to listen
	}

	tx := observationTx()
	tx.EdgeId, tx.Epoch, tx.Seq, tx.AcceptedAt = "bench", "0198c1d2-0000-7000-8000-000000000000", 1, timestamppb.Now()
	payload, err := proto.Marshal(tx)
	if err != nil {
		return result{}, err
	}
	push := func(int) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			return 1, rdb.LPush(ctx, "chasqui:queue", payload).Err()
		}
	}
	if _, err := measureN(clients, time.Second, push); err != nil { // warm-up
		return result{}, err
	}
	if v, err := rdb.ConfigGet(context.Background(), "appendfsync").Result(); err != nil || v["appendfsync"] != "always" {
		return result{}, errors.New("redis-server is not running with appendfsync always")
	}
	return measureN(clients, d, push)
}
