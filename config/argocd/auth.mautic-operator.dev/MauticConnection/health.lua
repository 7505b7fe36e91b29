-- Argo CD health check for auth.mautic-operator.dev/MauticConnection.
-- Argo CD runs checks from argocd-cm without Lua's string library: only base, table and a safe os.
local hs = {}

local function text(value)
  if value == nil then
    return ""
  end
  return tostring(value)
end

local function findCondition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == conditionType then
      return condition
    end
  end
  return nil
end

local function isTrue(condition)
  return condition ~= nil and condition.status == "True"
end

local ready = findCondition("Ready")
local reconciling = findCondition("Reconciling")
local stalled = findCondition("Stalled")

-- A suspended connection refreshes nothing; its last token stays published until it expires.
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: the operator requests no tokens and writes no Secrets"
  if ready ~= nil and ready.status == "False" and ready.reason == "Suspended" then
    hs.message = text(ready.message)
  end
  return hs
end

-- Conditions describe an older spec until the operator records the current generation.
local generation = obj.metadata.generation
local observedGeneration = nil
if obj.status ~= nil then
  observedGeneration = obj.status.observedGeneration
end
if generation ~= nil and (observedGeneration == nil or observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. text(generation)
  return hs
end

-- A person must act: fix the spec, the credentials Secret or Mautic's settings.
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = text(stalled.reason) .. ": " .. text(stalled.message)
  return hs
end

-- The published token works. A refresh being retried (Reconciling=True) does not change that.
if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = text(ready.message)
  if isTrue(reconciling) then
    hs.message = text(ready.message) .. "; the token works while a refresh is retried: " .. text(reconciling.message)
  end
  return hs
end

if ready ~= nil and ready.status == "False" then
  -- No token yet, and the first request is being retried.
  if isTrue(reconciling) and ready.reason ~= "TokenExpired" then
    hs.status = "Progressing"
    hs.message = "Waiting for a first token: " .. text(reconciling.message)
    return hs
  end
  -- The published token expired (and refreshing it fails, when Reconciling is True).
  hs.status = "Degraded"
  hs.message = text(ready.reason) .. ": " .. text(ready.message)
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the operator to obtain a token"
if ready ~= nil and text(ready.message) ~= "" then
  hs.message = text(ready.message)
end
return hs
