package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// refreshCommand is `kubectl mautic refresh NAME`.
type refreshCommand struct{}

func (c *refreshCommand) bind(*pflag.FlagSet) {}

func (c *refreshCommand) validate() error { return nil }

func (c *refreshCommand) run(ctx context.Context, inv invocation) error {
	conn, err := getConnection(ctx, inv.kube, inv.namespace, inv.name)
	if err != nil {
		return err
	}
	value, err := requestRefresh(ctx, inv.kube, conn, inv.clock.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.stdout, "Requested a refresh of MauticConnection %s/%s (%s=%s); the operator will obtain a new token for Secret %s.\n",
		conn.Namespace, conn.Name, authv1alpha1.RefreshRequestedAtAnnotation, value, conn.TokenSecretName())
	if conn.Spec.Suspend {
		fmt.Fprintln(inv.stdout, "Note: spec.suspend is true: the operator refreshes nothing until it is false.")
	}
	fmt.Fprintf(inv.stdout, "Follow it with: kubectl mautic status %s -n %s\n", conn.Name, conn.Namespace)
	return nil
}

// requestRefresh sets the refresh-requested-at annotation on conn to now (RFC 3339 with
// nanoseconds, so every request is a new value) with a merge patch, which needs no
// resourceVersion and touches nothing else. It returns the value written.
func requestRefresh(ctx context.Context, kube client.Client, conn *authv1alpha1.MauticConnection, now time.Time) (string, error) {
	value := now.UTC().Format(time.RFC3339Nano)
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{authv1alpha1.RefreshRequestedAtAnnotation: value}},
	})
	if err != nil {
		return "", err
	}
	target := &authv1alpha1.MauticConnection{ObjectMeta: metav1.ObjectMeta{Namespace: conn.Namespace, Name: conn.Name}}
	if err := kube.Patch(ctx, target, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return "", fmt.Errorf("setting annotation %s on MauticConnection %s/%s: %w",
			authv1alpha1.RefreshRequestedAtAnnotation, conn.Namespace, conn.Name, err)
	}
	return value, nil
}
