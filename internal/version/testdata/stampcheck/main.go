// Command stampcheck prints version.String(); version_test builds it with
// the release -ldflags.
package main

import (
	"fmt"

	"github.com/chasqui/chasqui/internal/version"
)

func main() { fmt.Print(version.String()) }
