// Test-only oracle: decodes schematic bodies exactly as the public image factory does (gopkg.in/yaml.v3,
// KnownFields) and prints the canonical encoding, so the TypeScript implementation can be compared with it.
//
// Protocol: every stdin line is one body, base64-encoded; every stdout line is a JSON object
// {"ok":true,"yaml":"..."} or {"ok":false,"error":"..."}.
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

type Schematic struct {
	Owner         string        `yaml:"owner,omitempty"`
	Overlay       Overlay       `yaml:"overlay,omitempty"`
	Customization Customization `yaml:"customization"`
}

type Customization struct {
	EmbeddedMachineConfiguration string           `yaml:"embeddedMachineConfiguration,omitempty"`
	ExtraKernelArgs              []string         `yaml:"extraKernelArgs,omitempty"`
	Meta                         []MetaValue      `yaml:"meta,omitempty"`
	SystemExtensions             SystemExtensions `yaml:"systemExtensions,omitempty"`
	Bootloader                   Bootloader       `yaml:"bootloader,omitempty"`
	SecureBoot                   SecureBoot       `yaml:"secureboot,omitempty"`
	DiskImage                    DiskImage        `yaml:"diskImage,omitempty"`
}

type MetaValue struct {
	Key   uint8  `yaml:"key"`
	Value string `yaml:"value"`
}

type SystemExtensions struct {
	OfficialExtensions []string `yaml:"officialExtensions,omitempty"`
}

type Overlay struct {
	Image   string         `yaml:"image"`
	Name    string         `yaml:"name"`
	Options map[string]any `yaml:"options,omitempty"`
}

type SecureBoot struct {
	EnrollKeys                   string `yaml:"enrollKeys,omitempty"`
	IncludeWellKnownCertificates bool   `yaml:"includeWellKnownCertificates,omitempty"`
}

type DiskImage struct {
	SectorSize uint `yaml:"sectorSize,omitempty"`
}

// Bootloader mirrors the enum upstream uses: an int whose text form is one of the names below
// (matched exactly, then lower-cased); "none" is the zero value and is therefore omitted.
type Bootloader int

var bootloaderNames = []string{"none", "dual-boot", "sd-boot", "grub"}

func (b Bootloader) MarshalText() ([]byte, error) {
	if b < 0 || int(b) >= len(bootloaderNames) {
		return []byte(fmt.Sprintf("Bootloader(%d)", int(b))), nil
	}
	return []byte(bootloaderNames[b]), nil
}

func (b *Bootloader) UnmarshalText(text []byte) error {
	for _, candidate := range []string{string(text), strings.ToLower(string(text))} {
		for i, name := range bootloaderNames {
			if candidate == name {
				*b = Bootloader(i)
				return nil
			}
		}
	}
	return fmt.Errorf("%s does not belong to BootloaderKind values", text)
}

func canonical(body []byte) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	var s Schematic
	if err := dec.Decode(&s); err != nil {
		return "", err
	}
	if s.Owner != "" {
		return "", fmt.Errorf("owner field is only supported in Enterprise edition")
	}
	data, err := yaml.Marshal(&s)
	return string(data), err
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 0, 1<<20), 8<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		body, err := base64.StdEncoding.DecodeString(in.Text())
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad input line:", err)
			os.Exit(2)
		}
		type result struct {
			Ok    bool   `json:"ok"`
			Yaml  string `json:"yaml,omitempty"`
			Error string `json:"error,omitempty"`
		}
		text, err := canonical(body)
		if err != nil {
			_ = enc.Encode(result{Error: err.Error()})
		} else {
			_ = enc.Encode(result{Ok: true, Yaml: text})
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
