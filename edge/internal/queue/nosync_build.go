//go:build chasqui_unsafe_nosync

package queue

// A binary built with -tags chasqui_unsafe_nosync commits without fsync,
// whatever its options say. It exists for one test: the negative control
// of systest's power-cut test, which must see acknowledged transactions
// lost to prove that its file system drops what was not synced. No release
// or image is built with the tag; such a binary says so when it opens a
// store.
func init() { forceUnsafeNoSync = true }
