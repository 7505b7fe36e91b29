-- Argo CD resource actions for auth.mautic-operator.dev/MauticConnection.
local actions = {}
actions["refresh"] = {["disabled"] = false}
return actions
