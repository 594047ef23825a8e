package deploytest

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The edge unit is Type=notify: systemd counts chasqui-edge as started when
// it sends READY=1 on $NOTIFY_SOCKET, and as stopping at STOPPING=1. The
// real binary, with a datagram socket standing in for systemd's: READY=1
// once it serves (its /readyz answers at once), STOPPING=1 on SIGTERM, then
// a clean exit.
func TestEdgeNotifiesSystemd(t *testing.T) {
	t.Parallel()
	bin, err := buildBinary("chasqui-edge")
	if err != nil {
		t.Fatal(err)
	}
	// A unix socket path must stay under 108 bytes: not under t.TempDir().
	sockDir, err := os.MkdirTemp("", "sdnotify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	sockPath := filepath.Join(sockDir, "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()

	logPath := filepath.Join(t.TempDir(), "chasqui-edge.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--edge-id", "site-sd", "--data-dir", t.TempDir(), "--central-addr", refusedAddr(t),
		"--insecure", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--disk-reserve", "1048576", "--shutdown-timeout", "5s")
	cmd.Env = append(cleanEnv(), "NOTIFY_SOCKET="+sockPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if t.Failed() {
			t.Logf("---- chasqui-edge log tail ----\n%s", tail(logPath, 40))
		}
	})

	next := func(what string) string {
		t.Helper()
		if err := sock.SetReadDeadline(time.Now().Add(60 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s on NOTIFY_SOCKET: %v", what, err)
		}
		return string(buf[:n])
	}
	if got := next("READY=1"); !strings.Contains(got, "READY=1") {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// Ready means serving: the HTTP address is logged before READY is
	// sent, and /readyz (store open) answers now, without waiting.
	e := &edgeProc{id: "site-sd", logPath: logPath}
	if !e.readReady() {
		t.Fatalf("READY=1 before the edge logged its addresses:\n%s", tail(logPath, 20))
	}
	if code := httpStatus(t, "http://"+e.httpAddr+"/readyz"); code != 200 {
		t.Fatalf("/readyz right after READY=1: %d, want 200", code)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got := next("STOPPING=1"); !strings.Contains(got, "STOPPING=1") {
		t.Fatalf("notification after SIGTERM %q, want STOPPING=1", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("chasqui-edge after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("chasqui-edge did not exit within 30s of SIGTERM")
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
