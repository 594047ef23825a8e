package forward

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/chasqui/chasqui/internal/validate"
)

// Compression names accepted by Config.Compression.
const (
	CompressionGzip = "gzip"
	CompressionNone = "none"
)

// Config is the forwarder's configuration. The zero value of each field
// means its default.
type Config struct {
	// CentralAddr is central's gRPC address. The caller dials it (with
	// internal/grpcclient); the forwarder names it in logs. Required.
	CentralAddr string

	// MaxCount is the most transactions in one Commit batch, at most
	// central's validate.MaxTransactions (5000). Default 4000: a backlog
	// drains in fewer, larger PostgreSQL and Badger commits (each costs an
	// fsync and per-batch work on both sides); MaxBytes, not the count,
	// is what bounds a batch's time on a slow link.
	MaxCount int
	// MaxBytes is the most marshalled transaction bytes in one batch (a single
	// larger transaction still goes alone). Default 1 MiB.
	MaxBytes int
	// Linger is how long a batch that is not full waits for more
	// transactions before it is sent. Default 5 ms; negative sends at once.
	Linger time.Duration
	// Window is the number of batches in flight at once (pipelining over a
	// long round trip). A batch holds its place from its send until its
	// answer is recorded in the queue, so a slow disk bounds the answers
	// waiting in memory too; one more batch may be read ahead. Default 8:
	// at the design's 250 ms round trip, 4 batches leave the queue's
	// recording of answers idle part of each round trip (docs/performance.md,
	// "The forwarder's window"); at most Window+1 batches of MaxBytes are
	// held, 9 MiB by default.
	Window int
	// BandwidthBytesPerSec caps the marshalled batch bytes sent per second
	// (a token bucket). Default 0: unlimited.
	BandwidthBytesPerSec int64
	// Compression is the gRPC compressor of Commit calls: "gzip" or "none".
	// Default "gzip".
	Compression string

	// MaxAttempts counts all attempts of one Commit call inside the retry
	// interceptor, the first included. Default 4.
	MaxAttempts uint
	// AttemptTimeoutBase and AttemptFloorBandwidth make the per-attempt
	// timeout of a batch: AttemptTimeoutBase + bytes / AttemptFloorBandwidth,
	// so a large batch gets the time it needs on the narrowest link we
	// accept. Defaults 5 s and 64 KiB/s.
	AttemptTimeoutBase    time.Duration
	AttemptFloorBandwidth int64

	// BackoffBase and BackoffMax bound the link backoff after the retry
	// interceptor gave up: capped exponential with jitter (half the delay is
	// random). Defaults 200 ms and 30 s.
	BackoffBase time.Duration
	BackoffMax  time.Duration

	// ProbeInterval is how often the link probe asks central for this
	// edge's cursor (IngestService.GetCursor, over the forwarder's own
	// connection and credentials) while no commit succeeded within the
	// interval and no batch is in flight: an idle edge still learns within
	// about one interval that central cannot be reached (Reachability). A
	// successful commit counts as a successful probe, so a busy link is not
	// probed. Default DefaultProbeInterval (15 s); negative disables the
	// probe.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe, a single attempt without retries.
	// Default 5 s, and never more than ProbeInterval.
	ProbeTimeout time.Duration

	// Clock is the time source of linger, backoff and the probe's schedule.
	// Default: real time.
	Clock Clock
	// Rand returns a jitter value in [0, 1). Default math/rand/v2.Float64.
	Rand func() float64
}

// Defaults of Config (the edge's flags use them too).
const (
	// DefaultMaxCount is Config.MaxCount.
	DefaultMaxCount = 4000
	// DefaultMaxBytes is Config.MaxBytes (1 MiB).
	DefaultMaxBytes = 1 << 20
	// DefaultLinger is Config.Linger.
	DefaultLinger = 5 * time.Millisecond
	// DefaultWindow is Config.Window.
	DefaultWindow = 8
	// DefaultProbeInterval is the link probe's default interval (Config.ProbeInterval).
	DefaultProbeInterval = 15 * time.Second
)

// Clock is the forwarder's view of time (injectable for tests).
type Clock interface {
	Now() time.Time
	// NewTimer returns a channel that receives once after d and a stop
	// function.
	NewTimer(d time.Duration) (<-chan time.Time, func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

func (c *Config) setDefaults() {
	if c.MaxCount == 0 {
		c.MaxCount = DefaultMaxCount
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Compression == "" {
		c.Compression = CompressionGzip
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 4
	}
	if c.AttemptTimeoutBase == 0 {
		c.AttemptTimeoutBase = 5 * time.Second
	}
	if c.AttemptFloorBandwidth == 0 {
		c.AttemptFloorBandwidth = 64 << 10
	}
	if c.BackoffBase == 0 {
		c.BackoffBase = 200 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.ProbeInterval == 0 {
		c.ProbeInterval = DefaultProbeInterval
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = 5 * time.Second
	}
	if c.ProbeInterval > 0 {
		c.ProbeTimeout = min(c.ProbeTimeout, c.ProbeInterval)
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
}

// Validate names the first unusable field. Zero values are valid (they
// mean the defaults).
func (c Config) Validate() error {
	switch {
	case c.CentralAddr == "":
		return fmt.Errorf("forward: CentralAddr is required")
	case c.MaxCount < 0:
		return fmt.Errorf("forward: MaxCount must not be negative (got %d)", c.MaxCount)
	case c.MaxCount > validate.MaxTransactions:
		return fmt.Errorf("forward: MaxCount above %d, central's limit per Commit, would be refused (got %d)", validate.MaxTransactions, c.MaxCount)
	case c.MaxBytes < 0:
		return fmt.Errorf("forward: MaxBytes must not be negative (got %d)", c.MaxBytes)
	case c.Window < 0:
		return fmt.Errorf("forward: Window must not be negative (got %d)", c.Window)
	case c.BandwidthBytesPerSec < 0:
		return fmt.Errorf("forward: BandwidthBytesPerSec must not be negative (got %d)", c.BandwidthBytesPerSec)
	case c.Compression != "" && c.Compression != CompressionGzip && c.Compression != CompressionNone:
		return fmt.Errorf("forward: Compression must be %q or %q (got %q)", CompressionGzip, CompressionNone, c.Compression)
	case c.MaxAttempts > 10:
		return fmt.Errorf("forward: MaxAttempts above 10 multiplies load on a failing central (got %d)", c.MaxAttempts)
	case c.AttemptTimeoutBase < 0:
		return fmt.Errorf("forward: AttemptTimeoutBase must not be negative (got %s)", c.AttemptTimeoutBase)
	case c.AttemptFloorBandwidth < 0:
		return fmt.Errorf("forward: AttemptFloorBandwidth must not be negative (got %d)", c.AttemptFloorBandwidth)
	case c.BackoffBase < 0:
		return fmt.Errorf("forward: BackoffBase must not be negative (got %s)", c.BackoffBase)
	case c.BackoffMax < 0:
		return fmt.Errorf("forward: BackoffMax must not be negative (got %s)", c.BackoffMax)
	case c.BackoffBase > 0 && c.BackoffMax > 0 && c.BackoffMax < c.BackoffBase:
		return fmt.Errorf("forward: BackoffMax (%s) must not be below BackoffBase (%s)", c.BackoffMax, c.BackoffBase)
	case c.ProbeTimeout < 0:
		return fmt.Errorf("forward: ProbeTimeout must not be negative (got %s)", c.ProbeTimeout)
	}
	return nil
}

// attemptTimeout is the per-attempt timeout of a batch of the given bytes.
func (c *Config) attemptTimeout(bytes int) time.Duration {
	return c.AttemptTimeoutBase + time.Duration(float64(bytes)/float64(c.AttemptFloorBandwidth)*float64(time.Second))
}

// backoff is the link backoff before link attempt n (n >= 1): capped
// exponential, the upper half jittered so that edges do not probe in step.
func backoff(base, maxDelay time.Duration, n int, rnd float64) time.Duration {
	d := maxDelay
	if n < 1 {
		n = 1
	}
	if n <= 32 {
		if e := base << (n - 1); e > 0 && e < maxDelay {
			d = e
		}
	}
	return d/2 + time.Duration(rnd*float64(d/2))
}
