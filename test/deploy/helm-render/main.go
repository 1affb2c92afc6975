// Renders a Helm chart the way `helm template` does, for the tests: Go's text/template with sprig's function
// map (Masterminds/sprig v3, the library Helm uses, from Debian's golang-github-masterminds-sprig-dev) plus
// Helm's own template functions that the chart uses (include, tpl, required, toYaml, fromYaml, toJson),
// values.yaml deep-merged with each -f file in order, missing keys rendered empty as Helm does
// (missingkey=zero, then "<no value>" removed), templates named <chart>/templates/<file>, files starting
// with "_" defining templates only. Debian 12 packages no helm and none is on npm, hence this.
//
// usage: helm-render CHART_DIR RELEASE NAMESPACE [VALUES_FILE…]   (output: "---\n# Source: …" documents)
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

func mergeValues(dst, src map[string]interface{}) map[string]interface{} {
	for key, value := range src {
		if sub, ok := value.(map[string]interface{}); ok {
			if existing, ok := dst[key].(map[string]interface{}); ok {
				dst[key] = mergeValues(existing, sub)
				continue
			}
		}
		dst[key] = value // Helm: a file's null removes the key's default too; not used by the chart's tests
	}
	return dst
}

func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func toYAML(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func run() error {
	if len(os.Args) < 4 {
		return errors.New("usage: helm-render CHART_DIR RELEASE NAMESPACE [VALUES_FILE…]")
	}
	chartDir, release, namespace := os.Args[1], os.Args[2], os.Args[3]
	chart, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, file := range os.Args[4:] {
		extra, err := readYAML(file)
		if err != nil {
			return err
		}
		values = mergeValues(values, extra)
	}
	name, _ := chart["name"].(string)
	data := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name": name, "Version": chart["version"], "AppVersion": chart["appVersion"],
		},
	}

	root := template.New("root").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	includeDepth := 0
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 100 {
			return "", errors.New("include: too deep")
		}
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil {
			return nil, errors.New(message)
		}
		if s, ok := value.(string); ok && s == "" {
			return nil, errors.New(message)
		}
		return value, nil
	}
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(text string) map[string]interface{} {
		out := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(text), &out); err != nil {
			out["Error"] = err.Error()
		}
		return out
	}
	root.Funcs(funcs)

	templatesDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(templatesDir)
	if err != nil {
		return err
	}
	var rendered []string
	for _, entry := range entries {
		if entry.IsDir() || !(strings.HasSuffix(entry.Name(), ".yaml") || strings.HasSuffix(entry.Name(), ".tpl")) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(templatesDir, entry.Name()))
		if err != nil {
			return err
		}
		full := name + "/templates/" + entry.Name()
		if _, err := root.New(full).Parse(string(text)); err != nil {
			return err
		}
		if !strings.HasPrefix(entry.Name(), "_") {
			rendered = append(rendered, full)
		}
	}
	sort.Strings(rendered)
	var out strings.Builder
	for _, full := range rendered {
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, data); err != nil {
			return err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if strings.TrimSpace(text) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", full, strings.TrimSpace(text))
	}
	_, err = os.Stdout.WriteString(out.String())
	return err
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}
