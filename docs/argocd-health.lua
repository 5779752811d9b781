-- Argo CD health check for EmailSettings (emailsettings.io/v1alpha1).
-- Install: argocd-cm key "resource.customizations.health.emailsettings.io_EmailSettings"
-- (see docs/helm.md). It reads only the standard status contract: observedGeneration,
-- and the Ready / Stalled / Reconciling conditions (kstatus).
local hs = {}
local generation = obj.metadata and obj.metadata.generation

if obj.spec ~= nil and obj.spec.enabled == false then
  hs.status = "Suspended"
  hs.message = "Email notifications are disabled (spec.enabled: false)"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to judge generation " .. tostring(generation)
  return hs
end

local conditions = {}
for _, condition in ipairs(obj.status.conditions) do
  conditions[condition.type] = condition
end

local function describe(condition)
  local text = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local ready = conditions["Ready"]
local stalled = conditions["Stalled"]
local reconciling = conditions["Reconciling"]

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling)
elseif ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.status = "Progressing"
  hs.message = ready ~= nil and describe(ready) or "Waiting for the Ready condition"
end
return hs
