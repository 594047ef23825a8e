package forward

// Backoff exposes the link backoff formula to the tests.
var Backoff = backoff
