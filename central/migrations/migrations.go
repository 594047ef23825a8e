// Package migrations owns central's SQL schema: the migrations are embedded
// in the binary and run at start by Migrate.
//
// They run through tern's migrate package because it speaks pgx natively
// (a *pgx.Conn, no database/sql driver beside the pgx pool central uses)
// and serializes concurrent migrators with an advisory lock, so two centrals
// starting at once do not race.
package migrations

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"
)

//go:embed *.sql
var files embed.FS

// VersionTable records the schema version.
const VersionTable = "chasqui.schema_version"

// Migrate brings the database conn is connected to up to the newest schema.
func Migrate(ctx context.Context, conn *pgx.Conn) error {
	// The version table lives in schema chasqui, which must exist before
	// tern creates the table (the first migration creates it too, for
	// clarity). IF NOT EXISTS makes this harmless when several run at once;
	// a concurrent creation may still report a unique violation, so retry once.
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS chasqui"); err != nil {
		if _, err2 := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS chasqui"); err2 != nil {
			return fmt.Errorf("creating schema chasqui: %w", err)
		}
	}
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		return fmt.Errorf("migrator: %w", err)
	}
	if err := m.LoadMigrations(files); err != nil {
		return fmt.Errorf("loading migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	return nil
}

// MigrateURL connects to url, migrates and disconnects.
func MigrateURL(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return Migrate(ctx, conn)
}
