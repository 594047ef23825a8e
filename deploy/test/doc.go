// Package deploytest checks the deployment files (docker-compose.yml, the
// Prometheus alert rules and configuration, the systemd units and their
// environment examples, scripts/dist.sh) against the real binaries: rules
// parse with Prometheus' own parser and fire on the series the services
// export (the queue-age alert on a real chasqui-edge's scraped /metrics),
// every CHASQUI_* name is a real flag of its binary, and the edge unit's
// Type=notify holds (a real chasqui-edge sends READY=1 and STOPPING=1).
//
// It is a module of its own, outside go.work, because its test
// dependencies (Prometheus' promql pulls in k8s.io/client-go; compose-go
// pulls docker and JSON-schema libraries) must not enter the module graph of
// the services: run it with
//
//	cd deploy/test && GOWORK=off go test ./...
package deploytest
