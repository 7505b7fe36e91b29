// Package gitopshealth evaluates the health a GitOps tool would show for a MauticConnection: Argo
// CD's health check and resource actions from config/argocd/, run with gopher-lua as Argo CD runs
// them, and kstatus, which Flux uses. The GitOps suite (test/gitops) and the e2e suite (test/e2e)
// both judge live objects with it.
package gitopshealth

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"runtime"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Where the Argo CD scripts and the argocd-cm snippet live, relative to the repository root with
// slashes, in the layout of Argo CD's resource_customizations directory. Path makes them absolute.
const (
	// ArgoCDDir holds everything config/argocd ships for Argo CD.
	ArgoCDDir = "config/argocd"
	// HealthScript is the MauticConnection health check.
	HealthScript = ArgoCDDir + "/auth.mautic-operator.dev/MauticConnection/health.lua"
	// ActionsDir holds discovery.lua and one directory with an action.lua for each action.
	ActionsDir = ArgoCDDir + "/auth.mautic-operator.dev/MauticConnection/actions"
	// DiscoveryScript lists the actions Argo CD offers for a MauticConnection.
	DiscoveryScript = ActionsDir + "/discovery.lua"
	// ArgoCDConfigMap is the argocd-cm patch that embeds the scripts.
	ArgoCDConfigMap = ArgoCDDir + "/argocd-cm-patch.yaml"
)

// ActionScript is the script of the named action, relative to the repository root.
func ActionScript(action string) string {
	return path.Join(ActionsDir, action, "action.lua")
}

// Path returns the absolute path of a file named relative to the repository root, such as
// HealthScript.
func Path(relative string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, filepath.FromSlash(relative)), nil
}

// repoRoot is the repository root, three directories above this source file.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return "", errors.New("gitopshealth cannot locate the repository from its source file path; do not build with -trimpath")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", ".."), nil
}

// ArgoCDHealth runs the Argo CD health check (HealthScript) on an object, as Argo CD does, and
// returns the health status (Healthy, Progressing, Degraded, Suspended...) and message.
func ArgoCDHealth(obj map[string]any) (status, message string, err error) {
	result, err := runScript(HealthScript, obj)
	if err != nil {
		return "", "", err
	}
	hs, ok := result.(map[string]any)
	if !ok {
		return "", "", fmt.Errorf("%s returned %T, not a table", HealthScript, result)
	}
	status, _ = hs["status"].(string)
	message, _ = hs["message"].(string)
	return status, message, nil
}

// ArgoCDActions runs the action discovery script (DiscoveryScript) on an object and returns the
// actions it offers, each name mapped to its parameters (such as "disabled").
func ArgoCDActions(obj map[string]any) (map[string]any, error) {
	result, err := runScript(DiscoveryScript, obj)
	if err != nil {
		return nil, err
	}
	actions, ok := result.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s returned %T, not a table", DiscoveryScript, result)
	}
	return actions, nil
}

// ArgoCDAction runs the named action's script (ActionScript) on an object and returns the object
// it produces, which Argo CD applies as a merge patch against the live object. obj is not changed.
func ArgoCDAction(obj map[string]any, action string) (map[string]any, error) {
	script := ActionScript(action)
	result, err := runScript(script, obj)
	if err != nil {
		return nil, err
	}
	modified, ok := result.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s returned %T, not the object", script, result)
	}
	return modified, nil
}

// KStatus computes an object's status as Flux does, with kstatus: Current, InProgress, Failed and
// so on, and the message that goes with it.
func KStatus(obj map[string]any) (*kstatus.Result, error) {
	return kstatus.Compute(&unstructured.Unstructured{Object: obj})
}
