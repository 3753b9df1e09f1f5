// A minimal Pulumi language host for Python programs, written for this project's engine tests.
//
// The upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not served by
// the Go module proxy this project can reach, so tools/bootstrap-engine.sh builds this one instead. It speaks the
// LanguageRuntime gRPC protocol of github.com/pulumi/pulumi/sdk/v3 and runs the program through the SDK's own
// `pulumi-language-python-exec` script (shipped in sdk/v3 under python/cmd/, installed beside this binary), with
// the interpreter of the project's virtualenv (runtime option `virtualenv`) or python3 from PATH.
//
// It implements what `pulumi preview/up/destroy` and the Automation API use: Handshake, GetRequiredPlugins,
// GetRequiredPackages (from the pulumi-plugin.json files of the installed SDKs), Run, GetPluginInfo, About,
// GetProgramDependencies, InstallDependencies (nothing to do: the virtualenv is made by the project's own setup)
// and RuntimeOptionsPrompts. Code generation, templates and policy packs are not supported.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

const version = "3.274.1-ambient-mesh"

// Exit code with which pulumi-language-python-exec says it already showed the user an actionable message.
const exitShownToUser = 32

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	execScript    string
}

func main() {
	// The engine passes flags (--logtostderr, -v=N, --tracing ADDR) and the engine address as the last argument.
	var engine string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--tracing" || args[i] == "-tracing":
			i++
		case strings.HasPrefix(args[i], "-"):
		default:
			engine = args[i]
		}
	}
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	script := filepath.Join(filepath.Dir(self), "pulumi-language-python-exec")
	if _, err := os.Stat(script); err != nil {
		fail(fmt.Errorf("pulumi-language-python-exec must be installed beside %s: %w", self, err))
	}
	h := &host{engineAddress: engine, execScript: script}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Init: func(s *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(s, h)
			return nil
		},
	})
	if err != nil {
		fail(err)
	}
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "pulumi-language-python: %v\n", err)
	os.Exit(1)
}

func (h *host) Handshake(_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version}, nil
}

// programPaths returns the project root, the program directory and the program's virtualenv ("" for none).
func programPaths(info *pulumirpc.ProgramInfo, pwd string) (string, string, string) {
	root, dir := pwd, pwd
	if info != nil {
		if info.GetRootDirectory() != "" {
			root = info.GetRootDirectory()
		}
		if info.GetProgramDirectory() != "" {
			dir = info.GetProgramDirectory()
		}
	}
	venv := ""
	if info != nil && info.GetOptions() != nil {
		if v, ok := info.GetOptions().AsMap()["virtualenv"].(string); ok && v != "" {
			venv = v
			if !filepath.IsAbs(venv) {
				venv = filepath.Join(root, venv)
			}
		}
	}
	return root, dir, venv
}

func python(venv string) string {
	if venv != "" {
		return filepath.Join(venv, "bin", "python")
	}
	if cmd := os.Getenv("PULUMI_PYTHON_CMD"); cmd != "" {
		return cmd
	}
	return "python3"
}

func pythonEnv(venv string) []string {
	env := os.Environ()
	if venv != "" {
		env = append(env, "VIRTUAL_ENV="+venv, "PATH="+filepath.Join(venv, "bin")+":"+os.Getenv("PATH"))
	}
	return append(env, "PYTHONUNBUFFERED=1")
}

// requiredPackages reads the pulumi-plugin.json of every package installed in the program's Python environment.
func requiredPackages(venv string) ([]*pulumirpc.PackageDependency, error) {
	out, err := exec.Command(python(venv), "-c", //nolint:gosec // the project's own interpreter
		"import site, sys; print('\\n'.join(site.getsitepackages() + [site.getusersitepackages()]))").Output()
	if err != nil {
		return nil, fmt.Errorf("listing site-packages with %s: %w", python(venv), err)
	}
	seen := map[string]bool{}
	var deps []*pulumirpc.PackageDependency
	for _, dir := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		files, _ := filepath.Glob(filepath.Join(dir, "*", "pulumi-plugin.json"))
		sort.Strings(files)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			var plugin struct {
				Resource bool   `json:"resource"`
				Name     string `json:"name"`
				Version  string `json:"version"`
				Server   string `json:"server"`
			}
			if json.Unmarshal(data, &plugin) != nil || !plugin.Resource || plugin.Name == "" {
				continue
			}
			v := plugin.Version
			if v != "" && !strings.HasPrefix(v, "v") {
				v = "v" + v
			}
			if seen[plugin.Name+v] {
				continue
			}
			seen[plugin.Name+v] = true
			deps = append(deps, &pulumirpc.PackageDependency{
				Name: plugin.Name, Kind: "resource", Version: v, Server: plugin.Server,
			})
		}
	}
	return deps, nil
}

func (h *host) GetRequiredPackages(_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	_, _, venv := programPaths(req.GetInfo(), "")
	deps, err := requiredPackages(venv)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: deps}, nil
}

func (h *host) GetRequiredPlugins(_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	_, _, venv := programPaths(req.GetInfo(), req.GetPwd())
	deps, err := requiredPackages(venv)
	if err != nil {
		return nil, err
	}
	plugins := make([]*pulumirpc.PluginDependency, 0, len(deps))
	for _, d := range deps {
		plugins = append(plugins, &pulumirpc.PluginDependency{
			Name: d.GetName(), Kind: d.GetKind(), Version: d.GetVersion(), Server: d.GetServer(),
		})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	root, dir, venv := programPaths(req.GetInfo(), req.GetPwd())
	program := req.GetProgram()
	if info := req.GetInfo(); info != nil && info.GetEntryPoint() != "" {
		program = filepath.Join(dir, info.GetEntryPoint())
	}
	if program == "" {
		program = dir
	}
	args := []string{
		h.execScript,
		"--monitor", req.GetMonitorAddress(),
		"--engine", h.engineAddress,
		"--project", req.GetProject(),
		"--stack", req.GetStack(),
		"--pwd", req.GetPwd(),
		"--root_directory", root,
		"--parallel", strconv.Itoa(int(req.GetParallel())),
		"--organization", req.GetOrganization(),
	}
	if req.GetDryRun() {
		args = append(args, "--dry_run", "true")
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	config, err := json.Marshal(req.GetConfig())
	if err != nil {
		return nil, err
	}
	secretKeys := req.GetConfigSecretKeys()
	if secretKeys == nil {
		secretKeys = []string{}
	}
	secrets, err := json.Marshal(secretKeys)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, python(venv), args...) //nolint:gosec // runs the user's own program
	cmd.Dir = req.GetPwd()
	cmd.Env = append(pythonEnv(venv), "PULUMI_CONFIG="+string(config), "PULUMI_CONFIG_SECRET_KEYS="+string(secrets))
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if exit.ExitCode() == exitShownToUser {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{Error: fmt.Sprintf("Program exited with non-zero exit code: %d",
				exit.ExitCode())}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("Problem executing program (could not run language "+
			"executor): %v", err)}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

func (h *host) InstallDependencies(_ *pulumirpc.InstallDependenciesRequest,
	_ grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	// The project's own setup (make venv) creates the virtualenv; nothing is installed from here.
	return nil
}

func (h *host) RuntimeOptionsPrompts(context.Context, *pulumirpc.RuntimeOptionsRequest,
) (*pulumirpc.RuntimeOptionsResponse, error) {
	return &pulumirpc.RuntimeOptionsResponse{}, nil
}

func (h *host) About(_ context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	_, _, venv := programPaths(req.GetInfo(), "")
	out, err := exec.Command(python(venv), "--version").Output() //nolint:gosec // the project's own interpreter
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: python(venv),
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "Python "),
	}, nil
}

func (h *host) GetProgramDependencies(context.Context, *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return &pulumirpc.GetProgramDependenciesResponse{}, nil
}
