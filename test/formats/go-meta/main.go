// Test-only oracle, standard library only: reads META the way upstream Talos does, as an independent
// check of the TypeScript writer.
//
//	go run . block  < 512KiB-content   → JSON {"tag":"value",...} from the first valid copy (go-adv layout)
//	go run . values < base64-text      → JSON [{"key":n,"value":"..."}] (meta.DecodeValues: gzip by magic)
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

const blockLength = 256 * 1024

func readBlock(buf []byte) (map[string]string, error) {
	if binary.BigEndian.Uint32(buf[:4]) != 0x5a4b3c2d {
		return nil, errors.New("bad start magic")
	}
	if binary.BigEndian.Uint32(buf[len(buf)-4:]) != 0xa5b4c3d2 {
		return nil, errors.New("bad end magic")
	}
	stored := append([]byte(nil), buf[len(buf)-36:len(buf)-4]...)
	zeroed := append([]byte(nil), buf...)
	copy(zeroed[len(zeroed)-36:len(zeroed)-4], make([]byte, 32))
	sum := sha256.Sum256(zeroed)
	if !bytes.Equal(stored, sum[:]) {
		return nil, errors.New("checksum mismatch")
	}
	out := map[string]string{}
	data := buf[4 : len(buf)-36]
	for len(data) >= 8 {
		tag := binary.BigEndian.Uint32(data[:4])
		if tag == 0 {
			break
		}
		size := binary.BigEndian.Uint32(data[4:8])
		if uint32(len(data)) < size+8 {
			return nil, errors.New("value beyond the end")
		}
		out[fmt.Sprintf("0x%x", tag)] = string(data[8 : 8+size])
		data = data[8+size:]
	}
	return out, nil
}

type value struct {
	Key   uint64 `json:"key"`
	Value string `json:"value"`
}

func decodeValues(s string) ([]value, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if len(b) >= 10 && b[0] == 0x1f && b[1] == 0x8b {
		r, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		if b, err = io.ReadAll(r); err != nil {
			return nil, err
		}
	}
	var out []value
	for _, part := range strings.Split(string(b), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("invalid value %q", part)
		}
		key, err := strconv.ParseUint(k, 0, 8)
		if err != nil {
			return nil, err
		}
		out = append(out, value{key, v})
	}
	return out, nil
}

func main() {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	var result any
	switch os.Args[1] {
	case "block":
		var tags map[string]string
		tags, err = readBlock(in[:blockLength])
		if err != nil {
			tags, err = readBlock(in[blockLength : 2*blockLength])
		}
		result = tags
	case "values":
		result, err = decodeValues(string(in))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(result)
}
