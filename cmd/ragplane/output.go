package main

import (
	"encoding/json"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// Output formats of read commands (-o).
const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// format is the output format asked for: -o, or json with the older --json.
func (c *cliContext) format() string {
	if c.output == "" {
		if c.json {
			return formatJSON
		}
		return formatTable
	}
	return c.output
}

// validateOutput checks -o before any command runs (a usage error).
func (c *cliContext) validateOutput() error {
	switch c.output {
	case "", formatTable, formatJSON, formatYAML:
	default:
		return fmt.Errorf("-o %q: the output format must be table, json or yaml", c.output)
	}
	if c.json && c.output != "" && c.output != formatJSON {
		return fmt.Errorf("--json and -o %s disagree: use one", c.output)
	}
	return nil
}

// structured is true when the format is a machine one (json or yaml), not a table.
func (c *cliContext) structured() bool { return c.format() != formatTable }

// printData prints v as JSON or YAML, whichever was asked for. YAML keys are the JSON names.
func (c *cliContext) printData(v any) error {
	if c.format() != formatYAML {
		return printJSON(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return err
	}
	enc := yaml.NewEncoder(os.Stdout)
	enc.SetIndent(2)
	if err := enc.Encode(generic); err != nil {
		return err
	}
	return enc.Close()
}
