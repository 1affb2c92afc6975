// The overlay oracle: what upstream's Go code writes and reads with gopkg.in/yaml.v3, with the struct tags of
// talos pkg/machinery/overlay/overlay.go (Options, PartitionOptions, InstallOptions) and image-factory
// pkg/schematic (Overlay.Options is a map[string]any). One request per stdin line (JSON), one answer a line.
//   {"mode":"options","schematic":"<overlay options YAML>","disk":..,"prefix":..,"artifacts":..}
//     -> {"getOptions": yaml.Marshal(options), "install": yaml.Marshal(&InstallOptions{...})}
//   {"mode":"parse","text":"<get-options stdout>"} -> {"ok":true,"name":..,"kernelArgs":[..],"offset":n} or {"ok":false}
package main

import (
	"bufio"
	"encoding/json"
	"os"

	"gopkg.in/yaml.v3"
)

type PartitionOptions struct {
	Offset uint64 `yaml:"offset,omitempty"`
}

type Options struct {
	Name             string           `yaml:"name"`
	KernelArgs       []string         `yaml:"kernelArgs,omitempty"`
	PartitionOptions PartitionOptions `yaml:"partitionOptions,omitempty"`
}

type ExtraOptions map[string]any

type InstallOptions struct {
	InstallDisk   string       `yaml:"installDisk"`
	MountPrefix   string       `yaml:"mountPrefix"`
	ArtifactsPath string       `yaml:"artifactsPath"`
	ExtraOptions  ExtraOptions `yaml:"extraOptions,omitempty"`
}

type request struct {
	Mode      string `json:"mode"`
	Schematic string `json:"schematic"`
	Disk      string `json:"disk"`
	Prefix    string `json:"prefix"`
	Artifacts string `json:"artifacts"`
	Text      string `json:"text"`
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			panic(err)
		}
		switch req.Mode {
		case "options":
			var doc struct {
				Options ExtraOptions `yaml:"options,omitempty"`
			}
			if err := yaml.Unmarshal([]byte(req.Schematic), &doc); err != nil {
				panic(err)
			}
			get, err := yaml.Marshal(doc.Options)
			if err != nil {
				panic(err)
			}
			install, err := yaml.Marshal(&InstallOptions{InstallDisk: req.Disk, MountPrefix: req.Prefix, ArtifactsPath: req.Artifacts, ExtraOptions: doc.Options})
			if err != nil {
				panic(err)
			}
			_ = out.Encode(map[string]string{"getOptions": string(get), "install": string(install)})
		case "parse":
			var o Options
			if err := yaml.Unmarshal([]byte(req.Text), &o); err != nil {
				_ = out.Encode(map[string]any{"ok": false})
				continue
			}
			args := o.KernelArgs
			if args == nil {
				args = []string{}
			}
			_ = out.Encode(map[string]any{"ok": true, "name": o.Name, "kernelArgs": args, "offset": o.PartitionOptions.Offset})
		}
	}
}
