// A stand-in for the `command` resource provider (command:local:Command only), for the engine tests.
//
// The real provider (module github.com/pulumi/pulumi-command/provider) is not served by the Go module proxy this
// project can reach, so tools/testkit/bootstrap-engine.sh builds this one when the real one cannot be had. It serves what
// the stack uses of command:local:Command: create/update/delete shell commands with interpreter, environment,
// stdin, dir and triggers; outputs stdout and stderr; replacement when triggers change, an update when any other
// input changes; PULUMI_COMMAND_STDOUT/STDERR of the previous run in update and delete. It reports the version
// the Python SDK asks for, so the engine loads it as that plugin. It is not the real provider: the engine tests
// that use it say so, and nothing outside tests/engine relies on it.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// Version is set with -ldflags -X main.Version=….
var Version = "1.2.1"

const localCommand = "command:local:Command"

var marshalOpts = plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true, KeepResources: true, SkipNulls: true}

type server struct {
	pulumirpc.UnimplementedResourceProviderServer
}

func main() {
	err := provider.Main("command", func(*provider.HostClient) (pulumirpc.ResourceProviderServer, error) {
		return &server{}, nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func (s *server) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (s *server) Handshake(context.Context, *pulumirpc.ProviderHandshakeRequest,
) (*pulumirpc.ProviderHandshakeResponse, error) {
	return &pulumirpc.ProviderHandshakeResponse{AcceptSecrets: true, AcceptResources: true, AcceptOutputs: false}, nil
}

func (s *server) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (s *server) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

func (s *server) Configure(context.Context, *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, SupportsPreview: true, AcceptResources: true}, nil
}

func (s *server) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func checkType(t string) error {
	if t != localCommand {
		return fmt.Errorf("the command stand-in provider serves %s only, not %s", localCommand, t)
	}
	return nil
}

func (s *server) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	if err := checkType(string(resource.URN(req.GetUrn()).Type())); err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), marshalOpts)
	if err != nil {
		return nil, err
	}
	if _, ok := news["addPreviousOutputInEnv"]; !ok {
		news["addPreviousOutputInEnv"] = resource.NewBoolProperty(true)
	}
	inputs, err := plugin.MarshalProperties(news, marshalOpts)
	return &pulumirpc.CheckResponse{Inputs: inputs}, err
}

// The inputs a Command keeps in its state; everything else in the state is an output.
var inputKeys = []string{
	"create", "update", "delete", "dir", "environment", "interpreter", "stdin", "triggers", "logging",
	"addPreviousOutputInEnv", "assetPaths", "archivePaths",
}

func (s *server) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	olds, err := plugin.UnmarshalProperties(req.GetOlds(), marshalOpts)
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), marshalOpts)
	if err != nil {
		return nil, err
	}
	ignored := map[string]bool{}
	for _, key := range req.GetIgnoreChanges() {
		ignored[key] = true
	}
	var diffs, replaces []string
	detailed := map[string]*pulumirpc.PropertyDiff{}
	for _, key := range inputKeys {
		if ignored[key] {
			continue
		}
		old, hadOld := olds[resource.PropertyKey(key)]
		updated, hasNew := news[resource.PropertyKey(key)]
		same := hadOld == hasNew && (!hasNew || (!updated.ContainsUnknowns() && old.DeepEquals(updated)))
		if same {
			continue
		}
		diffs = append(diffs, key)
		kind := pulumirpc.PropertyDiff_UPDATE
		if key == "triggers" {
			replaces = append(replaces, key)
			kind = pulumirpc.PropertyDiff_UPDATE_REPLACE
		}
		detailed[key] = &pulumirpc.PropertyDiff{Kind: kind, InputDiff: true}
	}
	changes := pulumirpc.DiffResponse_DIFF_NONE
	if len(diffs) > 0 {
		changes = pulumirpc.DiffResponse_DIFF_SOME
	}
	return &pulumirpc.DiffResponse{
		Changes: changes, Diffs: diffs, Replaces: replaces, DetailedDiff: detailed, HasDetailedDiff: true,
		DeleteBeforeReplace: len(replaces) > 0,
	}, nil
}

func text(v resource.PropertyValue) string {
	for v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsString() {
		return v.StringValue()
	}
	return ""
}

// run executes one of the command inputs (create/update/delete) with the Command's interpreter and environment.
func run(props resource.PropertyMap, which string, previous resource.PropertyMap) (string, string, error) {
	command := text(props[resource.PropertyKey(which)])
	if command == "" {
		return "", "", nil
	}
	interpreter := []string{"/bin/sh", "-c"}
	if v := props["interpreter"]; v.IsArray() && len(v.ArrayValue()) > 0 {
		interpreter = nil
		for _, part := range v.ArrayValue() {
			interpreter = append(interpreter, text(part))
		}
	}
	args := append(append([]string{}, interpreter[1:]...), command)
	cmd := exec.Command(interpreter[0], args...) //nolint:gosec // running the user's command is the point
	cmd.Env = os.Environ()
	if env := props["environment"]; env.IsObject() {
		keys := env.ObjectValue().StableKeys()
		for _, key := range keys {
			cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%s", key, text(env.ObjectValue()[key])))
		}
	}
	if add := props["addPreviousOutputInEnv"]; previous != nil && (!add.IsBool() || add.BoolValue()) {
		cmd.Env = append(cmd.Env, "PULUMI_COMMAND_STDOUT="+text(previous["stdout"]),
			"PULUMI_COMMAND_STDERR="+text(previous["stderr"]))
	}
	if dir := text(props["dir"]); dir != "" {
		cmd.Dir = dir
	}
	if stdin := text(props["stdin"]); stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out, errOut := strings.TrimSuffix(stdout.String(), "\n"), strings.TrimSuffix(stderr.String(), "\n")
	if err != nil {
		return out, errOut, fmt.Errorf("%s: %w: running %q:\nStdout:\n%s\nStderr:\n%s", which, err, command, out, errOut)
	}
	return out, errOut, nil
}

func outputs(inputs resource.PropertyMap, stdout, stderr resource.PropertyValue) (*structpb.Struct, error) {
	state := resource.PropertyMap{}
	for _, key := range inputKeys {
		if v, ok := inputs[resource.PropertyKey(key)]; ok {
			state[resource.PropertyKey(key)] = v
		}
	}
	state["stdout"], state["stderr"] = stdout, stderr
	return plugin.MarshalProperties(state, marshalOpts)
}

func unknown() resource.PropertyValue { return resource.MakeComputed(resource.NewStringProperty("")) }

func (s *server) Create(_ context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	inputs, err := plugin.UnmarshalProperties(req.GetProperties(), marshalOpts)
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		props, err := outputs(inputs, unknown(), unknown())
		return &pulumirpc.CreateResponse{Properties: props}, err
	}
	stdout, stderr, err := run(inputs, "create", nil)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	props, err := outputs(inputs, resource.NewStringProperty(stdout), resource.NewStringProperty(stderr))
	return &pulumirpc.CreateResponse{Id: hex.EncodeToString(id), Properties: props}, err
}

func (s *server) Update(_ context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	olds, err := plugin.UnmarshalProperties(req.GetOlds(), marshalOpts)
	if err != nil {
		return nil, err
	}
	news, err := plugin.UnmarshalProperties(req.GetNews(), marshalOpts)
	if err != nil {
		return nil, err
	}
	if req.GetPreview() {
		props, err := outputs(news, unknown(), unknown())
		return &pulumirpc.UpdateResponse{Properties: props}, err
	}
	which := "update"
	if text(news["update"]) == "" {
		which = "create"
	}
	stdout, stderr, err := run(news, which, olds)
	if err != nil {
		return nil, err
	}
	props, err := outputs(news, resource.NewStringProperty(stdout), resource.NewStringProperty(stderr))
	return &pulumirpc.UpdateResponse{Properties: props}, err
}

func (s *server) Delete(_ context.Context, req *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	state, err := plugin.UnmarshalProperties(req.GetProperties(), marshalOpts)
	if err != nil {
		return nil, err
	}
	if _, _, err := run(state, "delete", state); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

func (s *server) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
}
