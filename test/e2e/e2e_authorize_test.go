package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/testenv/localenv"
)

// pluginTimeout bounds one run of kubectl-mautic.
const pluginTimeout = 2 * time.Minute

// TestAuthorizationCode: an AuthorizationCode connection waits for a person (Failed for kstatus,
// Degraded for Argo CD); `kubectl mautic authorize` with a browser that approves makes it Ready
// (Current, Healthy) with no other step, and the refresh token stays in the operator's state
// Secret, never in the token Secret. `kubectl mautic status` then
// shows it Ready with the refresh token's expiry, and `kubectl mautic refresh` gets a new token.
func TestAuthorizationCode(t *testing.T) {
	s := requireSuite(t)
	g := newG(t)
	ctx := t.Context()

	const namespace, name = "e2e-authorize", "crm-authorize"
	callbackAddr, err := localenv.FreeLocalAddress()
	g.Expect(err).NotTo(HaveOccurred())
	_, port, err := net.SplitHostPort(callbackAddr)
	g.Expect(err).NotTo(HaveOccurred())
	// A client an admin registered for a person to authorize: no client-credentials grant, the
	// plugin's loopback redirect URI.
	app := s.env.Mautic.NewClient("e2e authorization code", false)
	app.RedirectURIs = []string{"http://" + callbackAddr + "/callback"}
	s.env.Mautic.AddClient(app)

	_, err = s.env.Apply(ctx, namespace, s.connectionObjects(namespace, name, authv1alpha1.GrantAuthorizationCode, app)...)
	g.Expect(err).NotTo(HaveOccurred())
	key := client.ObjectKey{Namespace: namespace, Name: name}

	conn := &authv1alpha1.MauticConnection{}
	g.Eventually(func(g Gomega) {
		g.Expect(s.env.Client.Get(ctx, key, conn)).To(Succeed())
		stalled := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.StalledCondition)
		g.Expect(stalled).NotTo(BeNil(), "conditions: %v", conn.Status.Conditions)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue), "Stalled: %s", stalled.Message)
		g.Expect(stalled.Reason).To(Equal(authv1alpha1.AuthorizationRequiredReason), "Stalled: %s", stalled.Message)
	}).Should(Succeed(), "before anyone authorizes, the connection waits for a person")
	argoMessage := s.expectGitOpsHealth(ctx, g, key, kstatus.FailedStatus, argoCDDegraded)
	g.Expect(argoMessage).To(HavePrefix(authv1alpha1.AuthorizationRequiredReason + ": "))

	// kubectl mautic authorize, with this test as the browser.
	authorize := s.startPlugin(ctx, g, "authorize", name, "-n", namespace, "--port", port, "--no-browser", "--timeout", pluginTimeout.String())
	authorizeURL := authorize.waitForLine(g, func(line string) bool {
		return strings.HasPrefix(strings.TrimSpace(line), s.env.Mautic.URL()+"/oauth/v2/authorize?")
	})
	browser, err := s.env.MauticHTTPClient()
	g.Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSpace(authorizeURL), nil)
	g.Expect(err).NotTo(HaveOccurred())
	resp, err := browser.Do(req) // Mautic approves at once and redirects to the plugin's loopback callback
	g.Expect(err).NotTo(HaveOccurred())
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	g.Expect(resp.Request.URL.Host).To(Equal(callbackAddr), "the browser ends on the plugin's callback")
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "callback page: %s", page)
	g.Expect(string(page)).To(ContainSubstring("Authorized"))
	output := authorize.wait(g)
	g.Expect(output).To(ContainSubstring("Authorized " + name))

	// Ready with no other step. Polled here rather than with WaitReady, which fails at once on
	// the Stalled condition the operator has not replaced yet.
	g.Eventually(func(g Gomega) {
		g.Expect(s.env.Client.Get(ctx, key, conn)).To(Succeed())
		ready := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), "Ready: %s: %s", ready.Reason, ready.Message)
		g.Expect(ready.Reason).To(Equal(authv1alpha1.TokenValidReason))
	}).Should(Succeed(), "the authorized connection becomes Ready by itself")
	s.expectGitOpsHealth(ctx, g, key, kstatus.CurrentStatus, argoCDHealthy)
	g.Expect(conn.Status.RefreshTokenExpiresAt).NotTo(BeNil(), "status.refreshTokenExpiresAt")

	tokenSecret := s.tokenSecret(ctx, g, conn)
	g.Expect(sortedKeys(tokenSecret.Data)).To(Equal(sorted(tokenSecretKeys)))
	g.Expect(metav1.IsControlledBy(tokenSecret, conn)).To(BeTrue(), "the token Secret is controlled by its connection")
	g.Expect(s.mauticAPIStatus(ctx, g, tokenSecret)).To(Equal(http.StatusOK), "Mautic accepts the published authorization value")
	refreshToken := s.stateRefreshToken(ctx, g, conn)
	g.Expect(s.env.Mautic.RefreshTokenValid(refreshToken)).To(BeTrue(), "the state Secret holds the current refresh token")
	g.Expect(secretContains(tokenSecret, refreshToken)).To(BeFalse(), "the token Secret holds the refresh token")

	// kubectl mautic status: Ready, with the refresh token's expiry.
	g.Expect(s.env.Client.Get(ctx, key, conn)).To(Succeed())
	status := s.runPlugin(ctx, g, "status", name, "-n", namespace)
	t.Logf("kubectl mautic status %s -n %s:\n%s", name, namespace, status)
	g.Expect(status).To(MatchRegexp(`(?m)^Ready:\s+True \(` + authv1alpha1.TokenValidReason + `\)`))
	refreshExpiry := regexp.MustCompile(`(?m)^Refresh token expires:\s+(\S+)`).FindStringSubmatch(status)
	g.Expect(refreshExpiry).To(HaveLen(2), "status shows the refresh token's expiry:\n%s", status)
	g.Expect(refreshExpiry[1]).To(Equal(conn.Status.RefreshTokenExpiresAt.UTC().Format(time.RFC3339)))

	// kubectl mautic refresh: a new access token, and a rotated refresh token that is kept.
	oldAccessToken := tokenSecret.Data[authv1alpha1.AccessTokenKey]
	refreshOutput := s.runPlugin(ctx, g, "refresh", name, "-n", namespace)
	g.Expect(refreshOutput).To(ContainSubstring("Requested a refresh"))
	g.Expect(s.env.Client.Get(ctx, key, conn)).To(Succeed())
	requested := conn.Annotations[authv1alpha1.RefreshRequestedAtAnnotation]
	g.Expect(requested).NotTo(BeEmpty(), "the plugin sets %s", authv1alpha1.RefreshRequestedAtAnnotation)
	g.Eventually(func(g Gomega) {
		g.Expect(s.env.Client.Get(ctx, key, conn)).To(Succeed())
		g.Expect(conn.Status.LastHandledRefreshRequest).To(Equal(requested))
		g.Expect(apimeta.IsStatusConditionTrue(conn.Status.Conditions, authv1alpha1.ReadyCondition)).To(BeTrue(),
			"conditions: %v", conn.Status.Conditions)
		tokenSecret = s.tokenSecret(ctx, g, conn)
		// Compared without gomega's matchers, which would print the tokens on failure.
		g.Expect(bytes.Equal(tokenSecret.Data[authv1alpha1.AccessTokenKey], oldAccessToken)).To(BeFalse(),
			"a new access token is published")
	}).Should(Succeed())
	g.Expect(s.env.Mautic.AccessTokenValid(string(tokenSecret.Data[authv1alpha1.AccessTokenKey]))).To(BeTrue())
	g.Expect(s.mauticAPIStatus(ctx, g, tokenSecret)).To(Equal(http.StatusOK))
	rotated := s.stateRefreshToken(ctx, g, conn)
	// Compared without gomega's matchers, which would print the tokens on failure.
	g.Expect(rotated != refreshToken).To(BeTrue(), "the refresh grant rotated the refresh token") //nolint:ginkgolinter // Equal would print the tokens
	g.Expect(s.env.Mautic.RefreshTokenValid(rotated)).To(BeTrue(), "the state Secret holds the rotated refresh token")
	g.Expect(secretContains(tokenSecret, rotated)).To(BeFalse(), "the token Secret holds the refresh token")
}

// stateRefreshToken reads the refresh token from the connection's state Secret.
func (s *suite) stateRefreshToken(ctx context.Context, g Gomega, conn *authv1alpha1.MauticConnection) string {
	state := &corev1.Secret{}
	g.Expect(s.env.Client.Get(ctx, client.ObjectKey{Namespace: conn.Namespace, Name: conn.StateSecretName()}, state)).To(Succeed())
	g.Expect(metav1.IsControlledBy(state, conn)).To(BeTrue(), "the state Secret is controlled by its connection")
	g.Expect(state.Data).To(HaveKey(authv1alpha1.RefreshTokenKey))
	return string(state.Data[authv1alpha1.RefreshTokenKey])
}

// mauticAPIStatus calls Mautic's /api/users/self with the token Secret's authorization value, as
// a workload would, and returns the HTTP status.
func (s *suite) mauticAPIStatus(ctx context.Context, g Gomega, tokenSecret *corev1.Secret) int {
	httpClient, err := s.env.MauticHTTPClient()
	g.Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.env.Mautic.URL()+"/api/users/self", nil)
	g.Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", string(tokenSecret.Data[authv1alpha1.AuthorizationKey]))
	resp, err := httpClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// secretContains reports whether any value of the Secret contains value.
func secretContains(secret *corev1.Secret, value string) bool {
	for _, data := range secret.Data {
		if bytes.Contains(data, []byte(value)) {
			return true
		}
	}
	return false
}

// runPlugin runs kubectl-mautic with args and the admin kubeconfig, expects exit status 0 and
// returns its standard output.
func (s *suite) runPlugin(ctx context.Context, g Gomega, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, pluginTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.pluginBinary, append(args, "--kubeconfig", s.env.KubeconfigPath)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	g.Expect(err).NotTo(HaveOccurred(), "kubectl mautic %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String()
}

// pluginRun is kubectl-mautic running in the background, its output read line by line.
type pluginRun struct {
	args   string
	cmd    *exec.Cmd
	lines  chan string
	seen   []string
	stderr *bytes.Buffer
}

// startPlugin starts kubectl-mautic with args and the admin kubeconfig; the test's end kills it.
func (s *suite) startPlugin(ctx context.Context, g Gomega, args ...string) *pluginRun {
	cmd := exec.CommandContext(ctx, s.pluginBinary, append(args, "--kubeconfig", s.env.KubeconfigPath)...)
	run := &pluginRun{args: strings.Join(args, " "), cmd: cmd, lines: make(chan string, 64), stderr: &bytes.Buffer{}}
	cmd.Stderr = run.stderr
	stdout, err := cmd.StdoutPipe()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cmd.Start()).To(Succeed())
	go func() {
		defer close(run.lines)
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			run.lines <- scanner.Text()
		}
	}()
	return run
}

// waitForLine returns the first line of standard output that matches, failing when the plugin
// ends first or takes too long.
func (r *pluginRun) waitForLine(g Gomega, match func(string) bool) string {
	timeout := time.After(eventuallyTimeout)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				exitErr := r.cmd.Wait()
				g.Expect(ok).To(BeTrue(), "kubectl mautic %s ended (%v) without the expected line\nstdout:\n%s\nstderr:\n%s",
					r.args, exitErr, r.output(), r.stderr)
			}
			r.seen = append(r.seen, line)
			if match(line) {
				return line
			}
		case <-timeout:
			r.kill()
			g.Expect(errors.New("timed out")).NotTo(HaveOccurred(), "kubectl mautic %s printed no expected line within %s\nstdout:\n%s\nstderr:\n%s",
				r.args, eventuallyTimeout, r.output(), r.stderr)
		}
	}
}

// wait reads the rest of the output, waits for the plugin to exit, expects exit status 0 and
// returns the whole standard output.
func (r *pluginRun) wait(g Gomega) string {
	timeout := time.After(pluginTimeout)
	for {
		select {
		case line, ok := <-r.lines:
			if ok {
				r.seen = append(r.seen, line)
				continue
			}
			// Wait after the output is read to its end, as exec.Cmd.StdoutPipe requires.
			g.Expect(r.cmd.Wait()).To(Succeed(), "kubectl mautic %s\nstdout:\n%s\nstderr:\n%s", r.args, r.output(), r.stderr)
			return r.output()
		case <-timeout:
			r.kill()
			g.Expect(errors.New("timed out")).NotTo(HaveOccurred(), "kubectl mautic %s did not exit within %s\nstdout:\n%s\nstderr:\n%s",
				r.args, pluginTimeout, r.output(), r.stderr)
		}
	}
}

// kill ends the plugin, reads the rest of its output and waits for it, so that its output can be shown.
func (r *pluginRun) kill() {
	_ = r.cmd.Process.Kill()
	for line := range r.lines {
		r.seen = append(r.seen, line)
	}
	_ = r.cmd.Wait()
}

// output is the standard output read so far.
func (r *pluginRun) output() string { return strings.Join(r.seen, "\n") + "\n" }
