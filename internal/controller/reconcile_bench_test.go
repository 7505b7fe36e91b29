package controller

import (
	"context"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
	"github.com/mautic-operator/mautic-operator/internal/mautic"
	"github.com/mautic-operator/mautic-operator/internal/token"
)

// The benchmarks in this file measure the steady state of a running (or restarted) manager: a
// connection whose published token is valid, which every reconcile only reads. They need no API
// server: the package's control plane starts only for the tests that ask for one (internal/testenv).

// benchUID is the benchmarked connection's UID (it sets the renewal's jitter); its names are the
// fixtures' (secrets_test.go).
const benchUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

// benchNow is the fake clock's time: ten minutes into the life of the published one hour token.
var benchNow = time.Date(2025, 3, 1, 12, 10, 0, 0, time.UTC)

// benchMauticClient is a mautic.Client that answers nothing and counts the calls made to it.
type benchMauticClient struct {
	tokens   atomic.Int64
	verifies atomic.Int64
}

var _ mautic.Client = (*benchMauticClient)(nil)

func (c *benchMauticClient) Token(context.Context, mautic.TokenRequest) (*mautic.Token, error) {
	c.tokens.Add(1)
	return &mautic.Token{AccessToken: "unexpected", TokenType: "bearer", ExpiresIn: time.Hour}, nil
}

func (c *benchMauticClient) Verify(context.Context, mautic.VerifyRequest) (*mautic.VerifyResult, error) {
	c.verifies.Add(1)
	return &mautic.VerifyResult{}, nil
}

// benchWorld is one ClientCredentials connection with its credentials Secret and the token Secret
// the operator published ten minutes before benchNow, valid for an hour.
type benchWorld struct {
	conn        *authv1alpha1.MauticConnection
	credentials *corev1.Secret
	tokenSecret *corev1.Secret
	token       *issuedToken
}

func newBenchWorld(b *testing.B) benchWorld {
	b.Helper()
	conn := &authv1alpha1.MauticConnection{
		ObjectMeta: metav1.ObjectMeta{Name: testConnectionName, Namespace: testNamespace, UID: benchUID, Generation: 1},
		Spec: authv1alpha1.MauticConnectionSpec{
			URL:                  testSiteURL,
			CredentialsSecretRef: authv1alpha1.SecretReference{Name: testCredentialsName},
		},
	}
	credentialsSecret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: testCredentialsName, Namespace: testNamespace},
		Data: map[string][]byte{
			authv1alpha1.ClientIDKey:     []byte("1_3bcbxd9e24g0gk4swg0kwgcwg4o8k8g4g888kwc44gcc0gwwk4"),
			authv1alpha1.ClientSecretKey: []byte("4ok2x70rlfokc8g0wws8c8kwcokw80k44sg48goc0ok4w0so0k"),
		},
	}
	baseURL, err := mautic.NormalizeURL(conn.Spec.URL)
	if err != nil {
		b.Fatalf("NormalizeURL: %v", err)
	}
	creds, missing := credentialsFrom(conn.EffectiveGrant(), credentialsSecret)
	if len(missing) > 0 {
		b.Fatalf("credentials missing %v", missing)
	}
	issuedAt := benchNow.Add(-10 * time.Minute)
	published := &issuedToken{
		Issued: token.Issued{
			IssuedAt:        issuedAt,
			ExpiresAt:       issuedAt.Add(time.Hour),
			CredentialsHash: creds.hash(conn.EffectiveGrant()),
			ConnectionHash:  connectionHash(conn, baseURL),
		},
		AccessToken:   "NzQ3ZjM1ZTc0YjYwYjM0YTExZDQ1OGQ4ZjE5YjYxYjM2",
		Authorization: mautic.BearerAuthorization("NzQ3ZjM1ZTc0YjYwYjM0YTExZDQ1OGQ4ZjE5YjYxYjM2"),
		TokenType:     authv1alpha1.TokenTypeBearer,
		URL:           baseURL,
	}
	return benchWorld{
		conn:        conn,
		credentials: credentialsSecret,
		tokenSecret: secretFromApply(tokenSecretApply(conn, published)),
		token:       published,
	}
}

// benchClient returns a fake client holding the world's objects, with the status subresource.
func (w benchWorld) benchClient(b *testing.B) client.Client {
	b.Helper()
	benchScheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(benchScheme))
	utilruntime.Must(authv1alpha1.AddToScheme(benchScheme))
	return fake.NewClientBuilder().
		WithScheme(benchScheme).
		WithStatusSubresource(&authv1alpha1.MauticConnection{}).
		WithObjects(w.conn.DeepCopy(), w.credentials.DeepCopy(), w.tokenSecret.DeepCopy()).
		Build()
}

// benchCacheClient stands in for the manager's client in the steady state, without the fake
// client's object tracker: Get deep-copies a stored object, as an informer cache read does, and a
// status patch computes its body (which the real client sends to the API server) and stops there.
// Any other call panics on the nil embedded client: the steady state makes none.
type benchCacheClient struct {
	client.Client
	objects map[client.ObjectKey]client.Object
	// lastPatch is the body of the last status patch.
	lastPatch []byte
	// storeStatus makes a status patch store the patched object, as the API server would.
	storeStatus bool
}

func (w benchWorld) benchCacheClient() *benchCacheClient {
	c := &benchCacheClient{objects: map[client.ObjectKey]client.Object{}}
	for _, obj := range []client.Object{w.conn, w.credentials, w.tokenSecret} {
		c.objects[client.ObjectKeyFromObject(obj)] = obj.DeepCopyObject().(client.Object)
	}
	return c
}

func (c *benchCacheClient) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if stored, ok := c.objects[key]; ok && benchCopyInto(stored, obj) {
		return nil
	}
	return apierrors.NewNotFound(schema.GroupResource{}, key.Name)
}

// benchCopyInto deep-copies stored into obj when both are of the same type.
func benchCopyInto(stored, obj client.Object) bool {
	switch into := obj.(type) {
	case *authv1alpha1.MauticConnection:
		from, ok := stored.(*authv1alpha1.MauticConnection)
		if ok {
			from.DeepCopyInto(into)
		}
		return ok
	case *corev1.Secret:
		from, ok := stored.(*corev1.Secret)
		if ok {
			from.DeepCopyInto(into)
		}
		return ok
	}
	return false
}

func (c *benchCacheClient) Status() client.SubResourceWriter { return benchStatusWriter{c: c} }

// benchStatusWriter computes a status patch's body and records it; with storeStatus, it also
// stores the patched object.
type benchStatusWriter struct {
	client.SubResourceWriter
	c *benchCacheClient
}

func (w benchStatusWriter) Patch(_ context.Context, obj client.Object, patch client.Patch, _ ...client.SubResourcePatchOption) error {
	data, err := patch.Data(obj)
	w.c.lastPatch = data
	if err == nil && w.c.storeStatus {
		w.c.objects[client.ObjectKeyFromObject(obj)] = obj.DeepCopyObject().(client.Object)
	}
	return err
}

// BenchmarkReconcileValidToken is the Reconcile of one connection whose published token is valid:
// get the connection, read the credentials Secret (uncached in the real manager), read the token
// Secret, run the policy chain, compare the Secret, and patch an unchanged status. "afterRestart"
// starts with an empty token memory, as a restarted manager does, and trusts the token Secret;
// "steady" remembers the token, as a manager that issued it does. Neither may call Mautic.
// "clientCallsOnly" makes the same four fake-client calls and nothing else, to show the share of
// the fake client (whose status patch goes through its managed-fields object tracker).
// "cacheClient" is "afterRestart" against benchCacheClient, to show the reconciler's own cost
// plus cache-like reads, without the fake client's tracker.
func BenchmarkReconcileValidToken(b *testing.B) {
	for _, variant := range []string{"afterRestart", "steady"} {
		b.Run(variant, func(b *testing.B) {
			world := newBenchWorld(b)
			mauticClient := &benchMauticClient{}
			fakeClient := world.benchClient(b)
			r := &MauticConnectionReconciler{
				Client:    fakeClient,
				APIReader: fakeClient,
				Mautic:    mauticClient,
				Clock:     clocktesting.NewFakeClock(benchNow),
			}
			if variant == "steady" {
				r.memory.put(client.ObjectKeyFromObject(world.conn), world.conn.UID, world.token)
			}
			ctx := context.Background()
			req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(world.conn)}
			// The first reconcile writes the status once; every later one finds it current.
			first, err := r.Reconcile(ctx, req)
			if err != nil {
				b.Fatalf("first Reconcile: %v", err)
			}
			if first.RequeueAfter <= 0 {
				b.Fatalf("first Reconcile requeues after %s, want the time to renewal", first.RequeueAfter)
			}

			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Reconcile(ctx, req); err != nil {
					b.Fatalf("Reconcile: %v", err)
				}
			}
			b.StopTimer()

			if n := mauticClient.tokens.Load(); n != 0 {
				b.Fatalf("%d token requests with a valid token, want 0", n)
			}
			if n := mauticClient.verifies.Load(); n != 0 {
				b.Fatalf("%d verify calls with a valid token, want 0", n)
			}
			secret := &corev1.Secret{}
			if err := fakeClient.Get(ctx, client.ObjectKeyFromObject(world.tokenSecret), secret); err != nil {
				b.Fatalf("reading the token Secret: %v", err)
			}
			if secret.ResourceVersion != "999" {
				// The fake client starts objects at resourceVersion 999; any write would bump it.
				b.Fatalf("the token Secret was written (resourceVersion %s)", secret.ResourceVersion)
			}
		})
	}

	b.Run("cacheClient", func(b *testing.B) {
		world := newBenchWorld(b)
		mauticClient := &benchMauticClient{}
		cacheClient := world.benchCacheClient()
		r := &MauticConnectionReconciler{
			Client:    cacheClient,
			APIReader: cacheClient,
			Mautic:    mauticClient,
			Clock:     clocktesting.NewFakeClock(benchNow),
		}
		ctx := context.Background()
		req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(world.conn)}
		// The first reconcile writes the status once; every later one finds it current.
		cacheClient.storeStatus = true
		if _, err := r.Reconcile(ctx, req); err != nil {
			b.Fatalf("first Reconcile: %v", err)
		}
		cacheClient.storeStatus = false
		cacheClient.lastPatch = nil

		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Reconcile(ctx, req); err != nil {
				b.Fatalf("Reconcile: %v", err)
			}
		}
		b.StopTimer()

		if n := mauticClient.tokens.Load() + mauticClient.verifies.Load(); n != 0 {
			b.Fatalf("%d calls to Mautic with a valid token, want 0", n)
		}
		if cacheClient.lastPatch != nil {
			b.Fatalf("a steady-state reconcile sent the status patch %s, want none", cacheClient.lastPatch)
		}
	})

	b.Run("clientCallsOnly", func(b *testing.B) {
		world := newBenchWorld(b)
		fakeClient := world.benchClient(b)
		ctx := context.Background()
		connKey := client.ObjectKeyFromObject(world.conn)
		credentialsKey := client.ObjectKeyFromObject(world.credentials)
		tokenKey := client.ObjectKeyFromObject(world.tokenSecret)
		b.ReportAllocs()
		for b.Loop() {
			conn := &authv1alpha1.MauticConnection{}
			if err := fakeClient.Get(ctx, connKey, conn); err != nil {
				b.Fatal(err)
			}
			patch := client.MergeFrom(conn.DeepCopy())
			if err := fakeClient.Get(ctx, credentialsKey, &corev1.Secret{}); err != nil {
				b.Fatal(err)
			}
			if err := fakeClient.Get(ctx, tokenKey, &corev1.Secret{}); err != nil {
				b.Fatal(err)
			}
			if err := fakeClient.Status().Patch(ctx, conn, patch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTrustTokenSecret is what a reconcile does with the token Secret it read: rebuild the
// published token from it (issuedFromSecret, the restart path) and check that the Secret holds
// exactly what the operator would apply (tokenSecretCurrent, which skips the apply).
func BenchmarkTrustTokenSecret(b *testing.B) {
	world := newBenchWorld(b)
	b.Run("issuedFromSecret", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if issuedFromSecret(world.tokenSecret) == nil {
				b.Fatal("the published token Secret was not trusted")
			}
		}
	})
	b.Run("tokenSecretCurrent", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !tokenSecretCurrent(world.tokenSecret, world.conn, world.token) {
				b.Fatal("the published token Secret is not current")
			}
		}
	})
	b.Run("both", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			known := issuedFromSecret(world.tokenSecret)
			if known == nil || !tokenSecretCurrent(world.tokenSecret, world.conn, known) {
				b.Fatal("the published token Secret was not trusted")
			}
		}
	})
}

// BenchmarkSecretVersions is what the watch of Secret versions keeps of every Secret it lists,
// most of them unrelated to any connection. The Secrets carry what makes real ones big: a
// last-applied-configuration annotation (kubectl apply copies the whole Secret, data included,
// into it), labels and managedFields. bytes_in/secret is the JSON size of one Secret's metadata;
// heap_bytes/secret the live heap the store holds per Secret once the list it was given is gone.
func BenchmarkSecretVersions(b *testing.B) {
	lastApplied := `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"tls-wildcard","namespace":"sales"},` +
		`"type":"kubernetes.io/tls","data":{"tls.crt":"` + strings.Repeat("TUlJRnpqQ0NBN2FnQXdJQkFnSVV", 400) + `"}}`
	full := &metav1.PartialObjectMetadata{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              "tls-wildcard",
			Namespace:         testNamespace,
			UID:               "7c9e6679-7425-40de-944b-e07fc1f90ae7",
			ResourceVersion:   "184467",
			CreationTimestamp: metav1.NewTime(benchNow.Add(-30 * 24 * time.Hour)),
			Labels: map[string]string{
				"app.kubernetes.io/name":       "ingress",
				"app.kubernetes.io/part-of":    "shop",
				"app.kubernetes.io/managed-by": "kubectl",
			},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": lastApplied,
			},
			ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager:    "kubectl-client-side-apply",
				Operation:  metav1.ManagedFieldsOperationUpdate,
				APIVersion: "v1",
				Time:       &metav1.Time{Time: benchNow.Add(-30 * 24 * time.Hour)},
				FieldsType: "FieldsV1",
				FieldsV1: metav1.NewFieldsV1(`{"f:data":{".":{},"f:tls.crt":{},"f:tls.key":{}},` +
					`"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/last-applied-configuration":{}},` +
					`"f:labels":{".":{},"f:app.kubernetes.io/managed-by":{},"f:app.kubernetes.io/name":{},"f:app.kubernetes.io/part-of":{}}},"f:type":{}}`),
			}},
		},
	}
	fullJSON, err := json.Marshal(full)
	if err != nil {
		b.Fatal(err)
	}
	const secrets = 10000
	var heapPerSecret float64
	for b.Loop() {
		store, base := newVersionStore(), heapInUse()
		list := make([]any, secrets)
		for i := range list {
			secret := full.DeepCopy()
			secret.Name = fmt.Sprintf("%s-%05d", full.Name, i)
			secret.UID = types.UID(fmt.Sprintf("7c9e6679-7425-40de-944b-%012d", i))
			list[i] = secret
		}
		if err := store.Replace(list, "1"); err != nil {
			b.Fatal(err)
		}
		heapPerSecret = float64(heapInUse()-base) / secrets
		goruntime.KeepAlive(store)
	}
	b.ReportMetric(float64(len(fullJSON)), "bytes_in/secret")
	b.ReportMetric(heapPerSecret, "heap_bytes/secret")
}

// heapInUse is the live heap after a collection.
func heapInUse() int64 {
	goruntime.GC()
	var stats goruntime.MemStats
	goruntime.ReadMemStats(&stats)
	return int64(stats.HeapAlloc)
}
