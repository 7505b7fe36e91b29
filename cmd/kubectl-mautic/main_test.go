package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// runOffline runs the plugin for command-line handling only: connecting to a cluster fails the test.
func runOffline(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	d := deps{stdout: stdout, stderr: stderr, connect: func(kubeFlags) (client.Client, string, error) {
		t.Errorf("connected to the cluster for %q", args)
		return nil, "", fmt.Errorf("no cluster in this test")
	}}
	code := run(context.Background(), args, d)
	return stdout.String(), stderr.String(), code
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		stderr     []string
		emptyOther bool
	}{
		{name: "--help", args: []string{"--help"}, code: exitOK, stdout: []string{
			"kubectl mautic authorize NAME [-n NAMESPACE] [--port 38080] [--no-browser] [--timeout 5m]",
			"kubectl mautic status NAME [-n NAMESPACE]", "kubectl mautic refresh NAME [-n NAMESPACE]",
			"--kubeconfig", "--context", "-n, --namespace",
		}},
		{name: "-h", args: []string{"-h"}, code: exitOK, stdout: []string{"Commands:"}},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: []string{"Commands:", "authorize", "status", "refresh"}},
		{name: "help authorize", args: []string{"help", "authorize"}, code: exitOK, stdout: []string{
			"Usage: kubectl mautic authorize NAME", "--port int", "(default 38080)", "--no-browser", "--timeout duration", "(default 5m0s)",
		}},
		{name: "authorize --help", args: []string{"authorize", "--help"}, code: exitOK, stdout: []string{"Usage: kubectl mautic authorize NAME"}},
		{name: "status -h", args: []string{"status", "-h"}, code: exitOK, stdout: []string{"Usage: kubectl mautic status NAME"}},
		{name: "no command", args: nil, code: exitUsage, stderr: []string{"Usage:"}},
		{name: "unknown command", args: []string{"delete", "crm"}, code: exitUsage, stderr: []string{`error: unknown command "delete"`}},
		{name: "missing name", args: []string{"status"}, code: exitUsage, stderr: []string{
			"error: status needs exactly one argument, the MauticConnection's NAME", "Usage: kubectl mautic status NAME",
		}},
		{name: "two names", args: []string{"refresh", "a", "b"}, code: exitUsage, stderr: []string{"exactly one argument"}},
		{name: "unknown flag", args: []string{"status", "crm", "--port", "1"}, code: exitUsage, stderr: []string{"unknown flag: --port"}},
		{name: "bad port", args: []string{"authorize", "crm", "--port", "70000"}, code: exitUsage, stderr: []string{"--port 70000 is not a TCP port"}},
		{name: "bad timeout", args: []string{"authorize", "crm", "--timeout", "0s"}, code: exitUsage, stderr: []string{"--timeout 0s must be positive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			stdout, stderr, code := runOffline(t, tc.args...)
			g.Expect(code).To(Equal(tc.code), "stdout: %s\nstderr: %s", stdout, stderr)
			for _, want := range tc.stdout {
				g.Expect(stdout).To(ContainSubstring(want))
			}
			for _, want := range tc.stderr {
				g.Expect(stderr).To(ContainSubstring(want))
			}
			if tc.code == exitOK {
				g.Expect(stderr).To(BeEmpty())
			} else {
				g.Expect(stdout).To(BeEmpty())
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		command string
		rest    []string
	}{
		{args: []string{"status", "crm", "-n", "shop"}, command: "status", rest: []string{"crm", "-n", "shop"}},
		{args: []string{"-n", "shop", "status", "crm"}, command: "status", rest: []string{"-n", "shop", "crm"}},
		{args: []string{"--context", "prod", "--namespace=shop", "refresh", "crm"}, command: "refresh", rest: []string{"--context", "prod", "--namespace=shop", "crm"}},
		{args: []string{"--kubeconfig", "/k", "-nshop", "authorize", "crm"}, command: "authorize", rest: []string{"--kubeconfig", "/k", "-nshop", "crm"}},
		{args: []string{"--help"}, command: "", rest: []string{"--help"}},
		{args: []string{"--", "status", "crm"}, command: "status", rest: []string{"crm"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			g := NewWithT(t)
			command, rest := splitCommand(tc.args)
			g.Expect(command).To(Equal(tc.command))
			g.Expect(rest).To(Equal(tc.rest))
		})
	}
}

func TestKubeconfigContextAndNamespace(t *testing.T) {
	g := NewWithT(t)
	f := newFixture(t)
	f.createConnection("crm", authv1alpha1.GrantAuthorizationCode)

	// A kubeconfig whose current context names the test's namespace, and a second context.
	config, err := clientcmd.Load(kubeconfigBytes)
	g.Expect(err).NotTo(HaveOccurred())
	current := config.Contexts[config.CurrentContext].DeepCopy()
	current.Namespace = f.ns
	config.Contexts[config.CurrentContext] = current
	other := current.DeepCopy()
	other.Namespace = "default"
	config.Contexts["other"] = other
	path := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(clientcmd.WriteToFile(*config, path)).To(Succeed())

	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	code := run(f.ctx, []string{"status", "crm", "--kubeconfig", path}, f.deps(stdout, stderr))
	g.Expect(code).To(Equal(exitOK), stderr.String())
	g.Expect(stdout.String()).To(ContainSubstring(f.ns+"/crm"), "the namespace comes from the context")

	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	code = run(f.ctx, []string{"--context", "other", "status", "crm", "--kubeconfig", path}, f.deps(stdout, stderr))
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(stderr.String()).To(ContainSubstring("MauticConnection default/crm not found"), "--context picks the other context's namespace")

	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	code = run(f.ctx, []string{"--context", "other", "-n", f.ns, "status", "crm", "--kubeconfig", path}, f.deps(stdout, stderr))
	g.Expect(code).To(Equal(exitOK), stderr.String())

	t.Setenv("KUBECONFIG", path)
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	code = run(f.ctx, []string{"status", "crm"}, f.deps(stdout, stderr))
	g.Expect(code).To(Equal(exitOK), "$KUBECONFIG is honoured: %s", stderr.String())

	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	code = run(f.ctx, []string{"status", "crm", "--context", "missing"}, f.deps(stdout, stderr))
	g.Expect(code).To(Equal(exitFailed))
	g.Expect(stderr.String()).To(ContainSubstring("context was not found for specified context: missing"))

	_ = os.Remove(path)
}
