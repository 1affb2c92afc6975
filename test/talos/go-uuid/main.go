// Prints the owner GUID Talos derives for a Secure Boot enrollment certificate (siderolabs/talos
// internal/pkg/secureboot/database/database.go): google/uuid's NewHash over the certificate's PEM text.
// Reads the DER certificate on standard input.
package main

import (
	"crypto/sha256"
	"encoding/pem"
	"fmt"
	"io"
	"os"

	"github.com/google/uuid"
)

func main() {
	der, err := io.ReadAll(os.Stdin)
	if err != nil {
		panic(err)
	}
	text := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	fmt.Println(uuid.NewHash(sha256.New(), uuid.NameSpaceX500, text, 4).String())
}
