// Command kubectl-mautic is mautic-operator's kubectl plugin, used as `kubectl mautic ...`:
// `authorize` runs the OAuth2 authorization-code flow for a MauticConnection and stores the
// refresh token for the operator, `status` explains a connection's state and what to fix, and
// `refresh` asks the operator for a new token now.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/version"
)

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1
	exitUsage  = 2
)

// deps are the plugin's ties to the outside world; tests replace them.
type deps struct {
	// stdout receives what the user asked for; stderr receives errors.
	stdout, stderr io.Writer
	// clock gives the times written to annotations and shown by status.
	clock clock.PassiveClock
	// connect builds a Kubernetes client and picks the namespace from the kubeconfig flags.
	connect func(kubeFlags) (client.Client, string, error)
	// mautic exchanges the authorization code.
	mautic mautic.Client
	// openBrowser opens a URL in the user's browser; failures are ignored.
	openBrowser func(url string) error
}

// defaultDeps returns the real outside world.
func defaultDeps() deps {
	return deps{
		stdout:      os.Stdout,
		stderr:      os.Stderr,
		clock:       clock.RealClock{},
		connect:     connect,
		mautic:      mautic.New(mautic.Options{UserAgent: userAgent}),
		openBrowser: openBrowser,
	}
}

func main() {
	// controller-runtime's client logs through this logger; the plugin reports errors itself.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], defaultDeps())
	stop()
	os.Exit(code)
}

// invocation is one run of a subcommand: the connection it names and where to find it.
type invocation struct {
	deps
	// kube is the Kubernetes client.
	kube client.Client
	// namespace is the namespace of the MauticConnection.
	namespace string
	// name is the MauticConnection's name.
	name string
}

// subcommand is one of the plugin's commands.
type subcommand interface {
	// bind registers the command's own flags.
	bind(fs *pflag.FlagSet)
	// validate checks the flags before anything talks to the cluster.
	validate() error
	// run does the work.
	run(ctx context.Context, inv invocation) error
}

// commandInfo describes a subcommand for dispatch and help.
type commandInfo struct {
	name    string
	usage   string
	summary string
	details string
	new     func() subcommand
}

// commands are the subcommands, in the order help lists them.
var commands = []commandInfo{
	{
		name:    "authorize",
		usage:   "kubectl mautic authorize NAME [-n NAMESPACE] [--port 38080] [--no-browser] [--timeout 5m]",
		summary: "Authorize an AuthorizationCode connection in a browser and store its refresh token",
		details: `Runs the OAuth2 authorization-code flow for a MauticConnection with spec.grant: AuthorizationCode.
It listens on http://127.0.0.1:PORT/callback, opens Mautic's authorization page, exchanges the
code Mautic sends back, stores the refresh token in the Secret NAME-oauth-state and asks the
operator to publish a token. The redirect URI must be registered on the Mautic API credentials
(Settings > API Credentials) exactly, host and port included.`,
		new: func() subcommand { return &authorizeCommand{} },
	},
	{
		name:    "status",
		usage:   "kubectl mautic status NAME [-n NAMESPACE]",
		summary: "Explain a connection's state: readiness, token expiry, next refresh, what to fix",
		details: "Prints a summary of the MauticConnection's status, and the fix when a person must act.",
		new:     func() subcommand { return &statusCommand{} },
	},
	{
		name:    "refresh",
		usage:   "kubectl mautic refresh NAME [-n NAMESPACE]",
		summary: "Ask the operator to obtain a new token now",
		details: "Sets the annotation " + authv1alpha1.RefreshRequestedAtAnnotation +
			" on the MauticConnection; the operator\nthen obtains a new token and updates the token Secret.",
		new: func() subcommand { return &refreshCommand{} },
	},
}

// run runs the plugin with args (without the program name) and returns the exit code.
func run(ctx context.Context, args []string, d deps) int {
	name, rest := splitCommand(args)
	switch name {
	case "":
		if hasHelpFlag(rest) {
			printUsage(d.stdout)
			return exitOK
		}
		printUsage(d.stderr)
		return exitUsage
	case "help":
		if len(rest) > 0 {
			if info, ok := lookupCommand(rest[0]); ok {
				printCommandUsage(d.stdout, info)
				return exitOK
			}
		}
		printUsage(d.stdout)
		return exitOK
	case "version":
		fmt.Fprintln(d.stdout, "kubectl-mautic", version.String())
		return exitOK
	}
	info, ok := lookupCommand(name)
	if !ok {
		fmt.Fprintf(d.stderr, "error: unknown command %q\n\n", name)
		printUsage(d.stderr)
		return exitUsage
	}

	cmd := info.new()
	fs, kube := newFlagSet(info, cmd)
	err := fs.Parse(rest)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		printCommandUsage(d.stdout, info)
		return exitOK
	case err != nil:
		return usageFailure(d.stderr, info, err.Error())
	case fs.NArg() != 1:
		return usageFailure(d.stderr, info, fmt.Sprintf("%s needs exactly one argument, the MauticConnection's NAME", info.name))
	}
	if err := cmd.validate(); err != nil {
		return usageFailure(d.stderr, info, err.Error())
	}

	kubeClient, namespace, err := d.connect(*kube)
	if err != nil {
		fmt.Fprintf(d.stderr, "error: %v\n", err)
		return exitFailed
	}
	inv := invocation{deps: d, kube: kubeClient, namespace: namespace, name: fs.Arg(0)}
	if err := cmd.run(ctx, inv); err != nil {
		fmt.Fprintf(d.stderr, "error: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// newFlagSet returns the flag set of a subcommand: its own flags and the kubeconfig flags.
func newFlagSet(info commandInfo, cmd subcommand) (*pflag.FlagSet, *kubeFlags) {
	fs := pflag.NewFlagSet("kubectl mautic "+info.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	cmd.bind(fs)
	kube := &kubeFlags{}
	kube.addTo(fs)
	return fs, kube
}

// usageFailure reports a command-line mistake and returns exitUsage.
func usageFailure(w io.Writer, info commandInfo, message string) int {
	fmt.Fprintf(w, "error: %s\nUsage: %s\nRun 'kubectl mautic help %s' for details.\n", message, info.usage, info.name)
	return exitUsage
}

// splitCommand finds the subcommand among args, skipping leading kubeconfig flags and their
// values (`kubectl mautic -n shop status crm` works), and returns it with the other arguments.
func splitCommand(args []string) (string, []string) {
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			if i+1 < len(args) {
				return args[i+1], append(append([]string{}, args[:i]...), args[i+2:]...)
			}
			break
		}
		if strings.HasPrefix(arg, "-") && arg != "-" {
			if valueFlags[arg] {
				i++
			}
			continue
		}
		return arg, append(append([]string{}, args[:i]...), args[i+1:]...)
	}
	return "", args
}

// hasHelpFlag reports whether args ask for help.
func hasHelpFlag(args []string) bool {
	for _, arg := range args {
		if arg == "-h" || arg == "--help" {
			return true
		}
	}
	return false
}

// lookupCommand finds a subcommand by name.
func lookupCommand(name string) (commandInfo, bool) {
	for _, info := range commands {
		if info.name == name {
			return info, true
		}
	}
	return commandInfo{}, false
}

// printUsage writes the plugin's help.
func printUsage(w io.Writer) {
	fmt.Fprintln(w, "kubectl mautic manages the MauticConnections of mautic-operator.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage:")
	for _, info := range commands {
		fmt.Fprintf(w, "  %s\n", info.usage)
	}
	fmt.Fprintln(w, "  kubectl mautic help [COMMAND]")
	fmt.Fprintln(w, "  kubectl mautic version")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, info := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", info.name, info.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Flags of every command:")
	fs := pflag.NewFlagSet("kube", pflag.ContinueOnError)
	fs.SortFlags = false
	(&kubeFlags{}).addTo(fs)
	fmt.Fprint(w, fs.FlagUsages())
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'kubectl mautic help COMMAND' for a command's flags.")
}

// printCommandUsage writes one subcommand's help.
func printCommandUsage(w io.Writer, info commandInfo) {
	fs, _ := newFlagSet(info, info.new())
	fmt.Fprintf(w, "Usage: %s\n\n%s\n\nFlags:\n%s", info.usage, info.details, fs.FlagUsages())
}

// openBrowser starts the system's URL opener without waiting for it.
func openBrowser(url string) error {
	opener, args := "xdg-open", []string{url}
	switch goruntime.GOOS {
	case "darwin":
		opener = "open"
	case "windows":
		opener, args = "rundll32", []string{"url.dll,FileProtocolHandler", url}
	}
	// G204: a fixed opener, run without a shell, and url is the authorize URL this plugin built.
	// noctx: the browser may outlive the command, so the opener is not tied to its context.
	cmd := exec.Command(opener, args...) //nolint:gosec,noctx // a fixed opener for our own URL, meant to outlive the command
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
