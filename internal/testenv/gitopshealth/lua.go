package gitopshealth

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// scriptTimeout is how long Argo CD lets a script from argocd-cm run.
const scriptTimeout = time.Second

// runScript runs a script, named relative to the repository root, the way Argo CD runs scripts
// from argocd-cm (util/lua/lua.go): only the package, base and table libraries and an os library
// reduced to time and date, no string library, the object as the global obj, and one second to
// finish. It returns the script's result converted to Go values, as Argo CD converts it to JSON.
func runScript(script string, obj map[string]any) (any, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	source, err := fs.ReadFile(os.DirFS(root), script)
	if err != nil {
		return nil, err
	}

	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage, lua.BaseLibName: lua.OpenBase,
		lua.TabLibName: lua.OpenTable, lua.OsLibName: lua.OpenOs,
	} {
		if err := state.CallByParam(lua.P{Fn: state.NewFunction(open), Protect: true}, lua.LString(name)); err != nil {
			return nil, fmt.Errorf("opening the Lua %s library: %w", name, err)
		}
	}
	restrictOs(state)
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, obj))

	if err := state.DoString(string(source)); err != nil {
		return nil, fmt.Errorf("running %s: %w", script, err)
	}
	return fromLua(state.Get(-1)), nil
}

// restrictOs leaves only os.time and os.date, as Argo CD's safe os library does, for both the os
// global and require("os").
func restrictOs(state *lua.LState) {
	full := state.GetGlobal(lua.OsLibName).(*lua.LTable)
	safe := state.NewTable()
	safe.RawSetString("time", full.RawGetString("time"))
	safe.RawSetString("date", full.RawGetString("date"))
	state.SetGlobal(lua.OsLibName, safe)
	loaded := state.GetField(state.Get(lua.RegistryIndex), "_LOADED")
	state.SetField(loaded, lua.OsLibName, safe)
}

// toLua converts an unstructured value to Lua as Argo CD does (decodeValue in util/lua/lua.go).
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case string:
		return lua.LString(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case []any:
		list := state.CreateTable(len(v), 0)
		for _, item := range v {
			list.Append(toLua(state, item))
		}
		return list
	case map[string]any:
		table := state.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(state, item))
		}
		return table
	default:
		return lua.LNil
	}
}

// fromLua converts a script's result to unstructured values. A table whose keys are 1..n is a
// list; any other table, the empty one included, is a map (Kubernetes objects omit empty lists).
func fromLua(value lua.LValue) any {
	switch v := value.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LString:
		return string(v)
	case lua.LNumber:
		if f := float64(v); f == float64(int64(f)) {
			return int64(f)
		}
		return float64(v)
	case *lua.LTable:
		keys := 0
		v.ForEach(func(lua.LValue, lua.LValue) { keys++ })
		if n := v.MaxN(); n > 0 && n == keys {
			list := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				list = append(list, fromLua(v.RawGetInt(i)))
			}
			return list
		}
		table := map[string]any{}
		v.ForEach(func(key, item lua.LValue) { table[key.String()] = fromLua(item) })
		return table
	default:
		return nil
	}
}
