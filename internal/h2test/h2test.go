// Package h2test reads the HTTP/2 flow-control windows a gRPC peer
// announces on the wire, so that tests check what a server or a client
// really offers, not what its configuration says. Plaintext only.
package h2test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
)

// Windows are the receive windows a peer grants: Stream is its
// SETTINGS_INITIAL_WINDOW_SIZE, Conn its connection window (the initial
// 65,535 plus the WINDOW_UPDATEs on stream 0 sent before it acknowledged
// our SETTINGS).
type Windows struct {
	Stream uint32
	Conn   uint32
}

// initialWindow is HTTP/2's initial window, of streams and connections.
const initialWindow = 65535

// ServerWindows connects to a plaintext gRPC server at addr and reads the
// windows it announces.
func ServerWindows(ctx context.Context, addr string) (Windows, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Windows{}, err
	}
	defer c.Close()
	setDeadline(ctx, c)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return Windows{}, err
	}
	return exchange(c)
}

// ClientWindows accepts one connection on lis from a plaintext gRPC client
// and reads the windows the client announces.
func ClientWindows(ctx context.Context, lis net.Listener) (Windows, error) {
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := lis.Accept()
		ch <- accepted{c, err}
	}()
	var a accepted
	select {
	case a = <-ch:
	case <-ctx.Done():
		_ = lis.Close() // ends the Accept
		return Windows{}, ctx.Err()
	}
	if a.err != nil {
		return Windows{}, a.err
	}
	defer a.c.Close()
	setDeadline(ctx, a.c)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(a.c, preface); err != nil {
		return Windows{}, fmt.Errorf("read client preface: %w", err)
	}
	if string(preface) != http2.ClientPreface {
		return Windows{}, fmt.Errorf("not an HTTP/2 client preface: %q", preface)
	}
	return exchange(a.c)
}

func setDeadline(ctx context.Context, c net.Conn) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(time.Minute))
	}
}

// exchange sends an empty SETTINGS and reads the peer's frames until it
// acknowledges them. gRPC writes its SETTINGS and its connection
// WINDOW_UPDATE as soon as the connection is up, before it reads ours, so
// both precede the acknowledgement.
func exchange(c net.Conn) (Windows, error) {
	fr := http2.NewFramer(c, bufio.NewReader(c))
	if err := fr.WriteSettings(); err != nil {
		return Windows{}, err
	}
	w := Windows{Stream: initialWindow, Conn: initialWindow}
	sawSettings := false
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return Windows{}, fmt.Errorf("read frame: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				if !sawSettings {
					return Windows{}, fmt.Errorf("peer acknowledged before sending its SETTINGS")
				}
				return w, nil
			}
			sawSettings = true
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				w.Stream = v
			}
			if err := fr.WriteSettingsAck(); err != nil {
				return Windows{}, err
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				w.Conn += f.Increment
			}
		}
	}
}
