// A minimal CNI runtime on libcni (Debian's golang-github-appc-cni-dev), so romana-cni is
// exercised the way container runtimes call it: conflist loading, version negotiation,
// chaining with reference plugins, result caching and prevResult on CHECK and DEL.
//
// Usage (CNI_PATH lists the plugin directories):
//
//	libcni-driver validate CONFLIST
//	libcni-driver add|check|del CONFLIST CONTAINER_ID NETNS IFNAME CACHE_DIR CNI_ARGS
//
// `add` prints the chain's result as JSON; every failure goes to stderr with exit code 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: %s validate|add|check|del CONFLIST [CONTAINER_ID NETNS IFNAME CACHE_DIR CNI_ARGS]", os.Args[0])
	}
	verb, conflist := os.Args[1], os.Args[2]
	list, err := libcni.ConfListFromFile(conflist)
	if err != nil {
		fail("loading %s: %v", conflist, err)
	}
	ctx := context.Background()
	paths := filepath.SplitList(os.Getenv("CNI_PATH"))

	if verb == "validate" {
		cni := libcni.NewCNIConfig(paths, nil)
		if _, err := cni.ValidateNetworkList(ctx, list); err != nil {
			fail("validate: %v", err)
		}
		return
	}
	if len(os.Args) != 8 {
		fail("%s needs CONTAINER_ID NETNS IFNAME CACHE_DIR CNI_ARGS", verb)
	}
	rt := &libcni.RuntimeConf{
		ContainerID: os.Args[3],
		NetNS:       os.Args[4],
		IfName:      os.Args[5],
	}
	for _, pair := range strings.Split(os.Args[7], ";") {
		if kv := strings.SplitN(pair, "=", 2); len(kv) == 2 {
			rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
		}
	}
	cni := libcni.NewCNIConfigWithCacheDir(paths, os.Args[6], nil)

	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("add: %v", err)
		}
		out, err := json.Marshal(result)
		if err != nil {
			fail("encoding the result: %v", err)
		}
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("check: %v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("del: %v", err)
		}
	default:
		fail("unknown verb %q", verb)
	}
}
