package auth_test

import (
	"context"

	"google.golang.org/grpc/metadata"
)

func metadataIncoming(ctx context.Context, md map[string]string) context.Context {
	return metadata.NewIncomingContext(ctx, metadata.New(md))
}
