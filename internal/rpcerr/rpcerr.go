// Package rpcerr is the shared base of every service's error mapping
// (docs/design.md, "Wire contract"). Each service keeps one mapper for its
// own domain errors; the classes all services answer alike live here, so
// they cannot drift apart:
//
//	a *validate.Error           INVALID_ARGUMENT naming the field, BadRequest details
//	context.Canceled            CANCELED
//	context.DeadlineExceeded    DEADLINE_EXCEEDED
//	anything the mapper does    INTERNAL "internal error"; the cause goes to the
//	not know                    log with the request id, never to the client
//
// A mapper reads:
//
//	if st := rpcerr.Shared(err); st != nil {
//		return st
//	}
//	switch { /* the service's own errors */ }
//	return rpcerr.Internal(ctx, log, err)
//
// Unknown errors are INTERNAL rather than UNAVAILABLE because clients retry
// UNAVAILABLE: retrying a bug only hides it.
package rpcerr

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/chasqui/chasqui/internal/rpcmeta"
	"github.com/chasqui/chasqui/internal/validate"
)

// InternalMessage is all a client learns of an error nobody expected.
const InternalMessage = "internal error"

// Shared answers the error classes every service maps alike, or nil for an
// error that is the service's own to map. It comes first in a mapper: a
// call the client canceled is CANCELED whatever the store made of it.
func Shared(err error) error {
	var ve *validate.Error
	switch {
	case errors.As(err, &ve):
		return validate.Status(ve).Err()
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "call canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return nil
}

// Internal is the answer to an error the mapper does not know: logged at
// ERROR with its cause and the call's request id (the client gets the id in
// the x-request-id header to quote), answered INTERNAL with InternalMessage.
func Internal(ctx context.Context, log *slog.Logger, err error) error {
	log.ErrorContext(ctx, "internal error", "error", err, "request_id", rpcmeta.RequestID(ctx, true))
	return status.Error(codes.Internal, InternalMessage)
}
