-- Requests a new token now: the operator refreshes once for each new value of the annotation.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["auth.mautic-operator.dev/refresh-requested-at"] = os.date("!%Y-%m-%dT%H:%M:%SZ")
return obj
