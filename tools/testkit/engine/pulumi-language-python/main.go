// A minimal Pulumi language host for Python programs, written for this project's engine tests.
//
// The upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3) is not served by
// the Go module proxy this project can reach, so tools/testkit/bootstrap-engine.sh builds this one instead. It speaks the
// LanguageRuntime gRPC protocol of github.com/pulumi/pulumi/sdk/v3 and runs the program through the SDK's own
// `pulumi-language-python-exec` script (shipped in sdk/v3 under python/cmd/, installed beside this binary), with
// the interpreter of the project's virtualenv (runtime option `virtualenv`) or python3 from PATH.
//
// It implements what `pulumi preview/up/destroy`, `--policy-pack` and the Automation API use: Handshake,
// GetRequiredPlugins, GetRequiredPackages (from the pulumi-plugin.json files of the installed SDKs), Run,
// RunPlugin (policy packs), GetPluginInfo, About, GetProgramDependencies, InstallDependencies (pip toolchain:
// creates a missing virtualenv from requirements.txt) and RuntimeOptionsPrompts. Code generation and templates are
// not supported.
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

// streamWriter forwards a child's output to a gRPC stream, one message per write.
type streamWriter func([]byte) error

func (w streamWriter) Write(p []byte) (int, error) {
	if err := w(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// InstallDependencies creates a missing virtualenv and installs requirements.txt into it (pip toolchain), the
// way `pulumi install` and a policy pack's first use expect. A virtualenv that exists is left alone.
func (h *host) InstallDependencies(req *pulumirpc.InstallDependenciesRequest,
	server grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	root, _, venv := programPaths(req.GetInfo(), req.GetDirectory())
	if venv == "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(venv, "bin", "python")); err == nil {
		return nil
	}
	stdout := streamWriter(func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	})
	stderr := streamWriter(func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	})
	steps := [][]string{{"python3", "-m", "venv", venv}, {filepath.Join(venv, "bin", "python"), "-m", "pip", "install",
		"--upgrade", "pip"}}
	if _, err := os.Stat(filepath.Join(root, "requirements.txt")); err == nil {
		steps = append(steps, []string{filepath.Join(venv, "bin", "python"), "-m", "pip", "install", "-r",
			filepath.Join(root, "requirements.txt")})
	}
	for _, step := range steps {
		cmd := exec.CommandContext(server.Context(), step[0], step[1:]...) //nolint:gosec // fixed commands
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(step, " "), err)
		}
	}
	return nil
}

// RunPlugin runs a plugin written in Python (a policy pack: PulumiPolicy.yaml with runtime python) with its own
// virtualenv, streaming its output back; the engine reads the port it prints.
func (h *host) RunPlugin(req *pulumirpc.RunPluginRequest,
	server grpc.ServerStreamingServer[pulumirpc.RunPluginResponse],
) error {
	_, dir, venv := programPaths(req.GetInfo(), req.GetPwd())
	program := dir
	if info := req.GetInfo(); info != nil && info.GetEntryPoint() != "" && info.GetEntryPoint() != "." {
		program = filepath.Join(dir, info.GetEntryPoint())
	}
	args := append([]string{"-u", program}, req.GetArgs()...)
	cmd := exec.CommandContext(server.Context(), python(venv), args...) //nolint:gosec // the user's own plugin
	cmd.Dir = req.GetPwd()
	cmd.Env = append(pythonEnv(venv), req.GetEnv()...)
	cmd.Stdout = streamWriter(func(b []byte) error {
		return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}})
	})
	cmd.Stderr = streamWriter(func(b []byte) error {
		return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}})
	})
	code := 0
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			return err
		}
		code = exit.ExitCode()
	}
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}})
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
