// Command helm-kstatus prints the kstatus result (sigs.k8s.io/cli-utils, the
// library Flux and kpt use) of each object in a JSON array read from stdin, one
// "<Status>\t<message>" line per object. The chart tests feed it the sample
// Sandbox statuses to prove that they are kstatus-compatible.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	var objects []map[string]interface{}
	data, err := io.ReadAll(os.Stdin)
	if err == nil {
		// Integers as int64, as the API machinery expects them.
		err = utiljson.Unmarshal(data, &objects)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "reading objects:", err)
		os.Exit(2)
	}
	for _, o := range objects {
		res, err := status.Compute(&unstructured.Unstructured{Object: o})
		if err != nil {
			fmt.Fprintln(os.Stderr, "computing status:", err)
			os.Exit(1)
		}
		fmt.Printf("%s\t%s\n", res.Status, res.Message)
	}
}
