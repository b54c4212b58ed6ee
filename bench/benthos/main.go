// The Benthos contender of bench/run (Redpanda Connect's open-source core): the stock
// Benthos CLI with only the components the consume pipeline uses compiled in, so it
// builds in minutes. bench/harness.py builds it once and caches the binary.
package main

import (
	"context"

	_ "github.com/benthosdev/benthos/v4/public/components/confluent"
	_ "github.com/benthosdev/benthos/v4/public/components/kafka"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
	_ "github.com/benthosdev/benthos/v4/public/components/redis"
	"github.com/benthosdev/benthos/v4/public/service"
)

func main() {
	service.RunCLI(context.Background())
}
