package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/mautic-operator/mautic-operator/test/node/answers"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Names of the Mautic test server's objects in a test's namespace.
const (
	mauticName = "mautic"
	// caSecretName holds the CA of the Mautic test server's certificate (key ca.crt), which the
	// connections trust through spec.tls.caSecretRef and the workloads mount.
	caSecretName = "mautic-ca"
	adminPort    = 8080
)

// mauticSite is the Mautic test server running as a pod behind the Service mautic.
type mauticSite struct {
	// URL is the site URL the connections use: https://<ClusterIP>, which the certificate names.
	URL string
	// admin is the control API of test/node/mauticserver, http://<ClusterIP>:8080, which this
	// machine reaches through kube-proxy's rules like any client in the cluster.
	admin string
	http  *http.Client
}

// deployMautic runs the Mautic test server in namespace with access tokens living
// accessLifetime, behind a Service, over TLS with a certificate that names the Service's DNS names
// and ClusterIP; the CA goes into the Secret caSecretName.
func (b *bed) deployMautic(t *testing.T, namespace string, accessLifetime time.Duration) *mauticSite {
	t.Helper()
	ctx := t.Context()
	labels := map[string]string{"app": mauticName}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: mauticName, Namespace: namespace},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
			{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443)},
			{Name: "admin", Port: adminPort, TargetPort: intstr.FromInt32(adminPort)},
		}},
	}
	must(t, b.client.Create(ctx, svc), "creating the Mautic Service")
	ip := svc.Spec.ClusterIP
	caPEM, certPEM, keyPEM, err := certificates(ip,
		mauticName, mauticName+"."+namespace, mauticName+"."+namespace+".svc", mauticName+"."+namespace+".svc.cluster.local")
	must(t, err, "making the Mautic test server's certificate")
	must(t, b.client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "mautic-tls", Namespace: namespace},
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}), "creating the Mautic TLS Secret")
	must(t, b.client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: caSecretName, Namespace: namespace},
		Data:       map[string][]byte{"ca.crt": caPEM},
	}), "creating the Mautic CA Secret")

	deploy := suiteDeployment(namespace, mauticName, corev1.Container{
		Name:           "mautic",
		Image:          mauticImage,
		Args:           []string{"--access-token-lifetime=" + accessLifetime.String()},
		Ports:          []corev1.ContainerPort{{Name: "https", ContainerPort: 8443}, {Name: "admin", ContainerPort: adminPort}},
		ReadinessProbe: httpReadiness("/counters", adminPort),
		VolumeMounts:   []corev1.VolumeMount{{Name: "tls", MountPath: "/etc/mautic-tls", ReadOnly: true}},
	}, secretVolume("tls", "mautic-tls"))
	must(t, b.client.Create(ctx, deploy), "creating the Mautic Deployment")
	b.waitDeploymentReady(t, namespace, mauticName, 1)
	site := &mauticSite{
		URL:   "https://" + ip,
		admin: fmt.Sprintf("http://%s:%d", ip, adminPort),
		http:  &http.Client{Timeout: 10 * time.Second},
	}
	// A Ready pod is reachable through its Service once kube-proxy has written its rules. Each try
	// opens its own connection: one made before the rules existed never reaches the pod.
	probe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	b.eventually(t, time.Minute, "the Mautic test server to answer through its Service", func() (bool, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, site.admin+"/counters", nil)
		if err != nil {
			return false, err.Error()
		}
		resp, err := probe.Do(req)
		if err != nil {
			return false, err.Error()
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, fmt.Sprintf("%s: %q", resp.Status, body)
	})
	return site
}

// restrictedPod and restrictedContainer are the security settings of the suite's own pods (the
// restricted Pod Security Standard).
func restrictedPod() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
}

func restrictedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		ReadOnlyRootFilesystem:   ptr.To(true),
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

// apiClient is an API client registered in the Mautic test server.
type apiClient struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

// newClient registers an API client; clientCredentials allows it the client-credentials grant.
func (m *mauticSite) newClient(t *testing.T, name string, clientCredentials bool) apiClient {
	t.Helper()
	var c apiClient
	m.call(t, http.MethodPost, "/clients", url.Values{"name": {name}, "client_credentials": {fmt.Sprint(clientCredentials)}}, &c)
	return c
}

// seedRefreshToken issues a refresh token for clientID, as a person's authorization would have.
func (m *mauticSite) seedRefreshToken(t *testing.T, clientID string) string {
	t.Helper()
	var answer struct {
		RefreshToken string `json:"refresh_token"`
	}
	m.call(t, http.MethodPost, "/refresh-tokens", url.Values{"client": {clientID}}, &answer)
	return answer.RefreshToken
}

// holdNextTokenAnswer makes the server hold its next token answer to clientID for d, after
// carrying out the grant.
func (m *mauticSite) holdNextTokenAnswer(t *testing.T, clientID string, d time.Duration) {
	t.Helper()
	m.call(t, http.MethodPost, "/hold", url.Values{"client": {clientID}, "seconds": {fmt.Sprint(int(d.Seconds()))}}, nil)
}

// counters reads the request counters.
func (m *mauticSite) counters(t *testing.T) answers.Counters {
	t.Helper()
	var c answers.Counters
	m.call(t, http.MethodGet, "/counters", nil, &c)
	return c
}

// call calls the control API and decodes its JSON answer into out (when not nil).
func (m *mauticSite) call(t *testing.T, method, path string, query url.Values, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	u := m.admin + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	must(t, err, "building a control API request")
	resp, err := m.http.Do(req)
	must(t, err, "calling the Mautic test server's control API "+path)
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the Mautic test server's control API %s answered HTTP %d", path, resp.StatusCode)
	}
	if out != nil {
		must(t, json.NewDecoder(resp.Body).Decode(out), "decoding the control API's answer to "+path)
	}
}

// certificates returns a new CA and a serving certificate it signed for ip and dnsNames, as PEM.
func certificates(ip string, dnsNames ...string) (caPEM, certPEM, keyPEM []byte, err error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mautic-operator node suite CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  []net.IP{net.ParseIP(ip)},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// must fails the test with what when err is not nil.
func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitDeploymentReady waits until the Deployment's rollout is complete with replicas ready pods.
func (b *bed) waitDeploymentReady(t *testing.T, namespace, name string, replicas int32) {
	t.Helper()
	deploy := &appsv1.Deployment{}
	b.eventually(t, 3*time.Minute, fmt.Sprintf("Deployment %s/%s to have %d ready replicas of its latest template", namespace, name, replicas), func() (bool, string) {
		if err := b.client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, deploy); err != nil {
			return false, err.Error()
		}
		s := deploy.Status
		done := s.ObservedGeneration >= deploy.Generation && s.UpdatedReplicas == replicas &&
			s.ReadyReplicas == replicas && s.Replicas == replicas && s.AvailableReplicas == replicas
		return done, fmt.Sprintf("status %+v", s)
	}, func() string { return b.podsReport(namespace) })
}

// eventually polls cond every half second until it holds, failing the test after timeout with
// cond's last description and, when diagnose is set, what diagnose reports.
func (b *bed) eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string), diagnose ...func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) || t.Context().Err() != nil {
			report := ""
			for _, d := range diagnose {
				report += "\n" + d()
			}
			t.Fatalf("timed out after %s waiting for %s; last: %s%s", timeout, what, last, report)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// podsReport describes the pods of namespace, their conditions and the last log lines of their
// containers, for a failure message.
func (b *bed) podsReport(namespace string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pods := &corev1.PodList{}
	if err := b.client.List(ctx, pods, client.InNamespace(namespace)); err != nil {
		return "listing pods: " + err.Error()
	}
	out := fmt.Sprintf("pods in %s:", namespace)
	for _, p := range pods.Items {
		out += fmt.Sprintf("\n  %s phase=%s", p.Name, p.Status.Phase)
		for _, c := range p.Status.Conditions {
			out += fmt.Sprintf(" %s=%s", c.Type, c.Status)
		}
		for _, cs := range p.Status.ContainerStatuses {
			out += fmt.Sprintf("\n    container %s ready=%v restarts=%d state=%+v", cs.Name, cs.Ready, cs.RestartCount, cs.State)
		}
		logs, err := b.clientset.CoreV1().Pods(namespace).GetLogs(p.Name, &corev1.PodLogOptions{TailLines: ptr.To[int64](15)}).DoRaw(ctx)
		if err == nil {
			out += "\n    log:\n" + string(logs)
		}
	}
	events := &corev1.EventList{}
	if err := b.client.List(ctx, events, client.InNamespace(namespace)); err == nil {
		out += "\n  events:"
		for _, e := range events.Items {
			if e.Type != corev1.EventTypeNormal {
				out += fmt.Sprintf("\n    %s %s/%s: %s", e.Reason, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Message)
			}
		}
	}
	return out
}
