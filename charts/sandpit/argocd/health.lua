-- Argo CD health check for sandpit.dev/Sandbox.
--
-- The Sandbox status is kstatus-compliant: a top-level status.observedGeneration,
-- a Ready condition, and Reconciling / Stalled conditions that are True only while
-- something is abnormal (Stalled: nothing changes without the user, such as
-- CrashLoopBackOff, phase Failed, or no node past the scheduling window). This
-- check reads the same fields kstatus does, so the two agree: Stalled is Degraded,
-- Reconciling is Progressing. It adds Suspended for a paused sandbox and Unknown
-- for a sandbox whose node stopped reporting, and gates on observedGeneration so
-- health never flaps on a stale status.
-- Install: argocd-cm key resource.customizations.health.sandpit.dev_Sandbox
-- (see examples/gitops/argocd/argocd-cm-sandpit-health.yaml).
local hs = { status = "Progressing", message = "Waiting for the sandpit controller" }

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

if obj.status == nil then
  return hs
end
local status = obj.status

-- A status written for an older spec says nothing about the current one.
if status.observedGeneration ~= nil and obj.metadata.generation ~= nil
    and status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for the sandbox's latest spec (generation " .. tostring(obj.metadata.generation) .. ") to be observed"
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = status.message or status.reason or "The sandbox failed"
  return hs
end

if status.phase == "Unknown" then
  hs.status = "Unknown"
  hs.message = status.message or status.reason or "The sandbox's node stopped reporting"
  return hs
end

if status.phase == "Paused" then
  hs.status = "Suspended"
  hs.message = status.message or "The sandbox is paused (spec.paused)"
  return hs
end

if status.phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = status.message or "Every container completed"
  return hs
end

local reconciling = condition(status, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling, "Reconciling")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end
if ready ~= nil then
  hs.message = describe(ready, "Not ready yet")
  return hs
end

-- Phase without conditions (an old agent): trust the phase.
if status.phase == "Running" then
  hs.status = "Healthy"
  hs.message = "Running"
  return hs
end
if status.phase ~= nil then
  hs.message = "Phase " .. status.phase
end
return hs
