package localenv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	authv1alpha1 "github.com/mautic-operator/mautic-operator/api/v1alpha1"
)

// readyPollInterval is how often WaitReady reads the connection.
const readyPollInterval = 250 * time.Millisecond

// WaitReady polls the MauticConnection namespace/name until its Ready condition is True and returns
// it. It fails early when the connection is Stalled or a manager started by StartManager exits
// unasked, and the error lists the connection's conditions.
func (e *Env) WaitReady(ctx context.Context, namespace, name string, timeout time.Duration) (*authv1alpha1.MauticConnection, error) {
	conn := &authv1alpha1.MauticConnection{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := wait.PollUntilContextTimeout(ctx, readyPollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		if err := e.exitedManager(); err != nil {
			return false, err
		}
		if err := e.Client.Get(ctx, key, conn); err != nil {
			if apierrors.IsNotFound(err) || ctx.Err() != nil {
				return false, nil //nolint:nilerr // not created yet (poll again), or the timeout, reported below
			}
			return false, err
		}
		if stalled := apimeta.FindStatusCondition(conn.Status.Conditions, authv1alpha1.StalledCondition); stalled != nil && stalled.Status == metav1.ConditionTrue {
			return false, fmt.Errorf("the connection is Stalled: %s: %s", stalled.Reason, stalled.Message)
		}
		return apimeta.IsStatusConditionTrue(conn.Status.Conditions, authv1alpha1.ReadyCondition), nil
	})
	if wait.Interrupted(err) && ctx.Err() == nil {
		err = fmt.Errorf("not Ready within %s", timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("waiting for Ready=True: %w\n\nconditions:\n%s", err, conditionsText(conn))
	}
	return conn, nil
}

// exitedManager returns an error when a manager started by StartManager has exited without being
// stopped (a manager stopped on purpose, to restart it or after a test, is no failure).
func (e *Env) exitedManager() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.managers {
		if m.Stopped() {
			continue
		}
		select {
		case <-m.Done():
			return errors.New("the manager exited")
		default:
		}
	}
	return nil
}

// conditionsText renders the connection's conditions, one a line.
func conditionsText(conn *authv1alpha1.MauticConnection) string {
	if len(conn.Status.Conditions) == 0 {
		return "    (none yet)"
	}
	var lines []string
	for _, c := range conn.Status.Conditions {
		lines = append(lines, fmt.Sprintf("    %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(lines, "\n")
}
