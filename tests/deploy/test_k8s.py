"""deploy/k8s (docs/kubernetes.md), checked offline: rendered like `kubectl apply -k` would, every object
validated against the Kubernetes JSON schemas (kubernetes-validate bundles them), and the invariants the
deployment relies on: probes, limits, non-root, read-only root file system, no service-account token,
network isolation of the model services, autoscalers and disruption budgets on real targets, Secret keys,
one image."""

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.support.paths import ROOT

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
SECRET_TEMPLATE = yaml.safe_load((K8S / "secret.example.yaml").read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
TARGETS = {
    "api": "service.api:AdmissionsAPI",
    "single": "service.models:SingleModel",
    "batch": "service.models:BatchModel",
}
# The oldest Kubernetes release still maintained upstream when this was written, and the newest bundled.
KUBERNETES_VERSIONS = ("1.31.0", kubernetes_validate.utils.latest_version())
CLUSTER_SCOPED = {"Namespace"}
# Where BentoML writes with BENTOML_HOME=/home/bentoml/bento (the image's): it creates bentos/, envs/ and
# tmp/ at start and its Prometheus multiprocess folder; sockets and temporary files go to /tmp.
WRITABLE = {"/tmp", *(f"/home/bentoml/bento/{d}" for d in ("bentos", "envs", "tmp", "prometheus_multiproc_dir"))}
IMAGE_UID = 1034  # the image's `bentoml` user; docker-compose.yml runs it as "1034:1034" too
Doc = dict[str, Any]


def render(directory: Path = K8S) -> list[Doc]:
    """What `kustomize build` makes of this kustomization: only the fields it uses (resources, namespace,
    images). Anything else in kustomization.yaml fails here, so the loader cannot silently fall behind."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - {"apiVersion", "kind", "namespace", "resources", "images"}
    assert not unsupported, f"the test's loader does not apply {unsupported}; extend render()"
    images = {image["name"]: image for image in kustomization.get("images", [])}
    docs = []
    for resource in kustomization["resources"]:
        for doc in yaml.safe_load_all((directory / resource).read_text()):
            if doc is None:
                continue
            if "namespace" in kustomization:
                if doc["kind"] == "Namespace":
                    doc["metadata"]["name"] = kustomization["namespace"]
                else:
                    doc["metadata"]["namespace"] = kustomization["namespace"]
            for container in containers(doc):
                name, _, tag = container["image"].partition(":")
                if name in images:
                    new = images[name]
                    container["image"] = f"{new.get('newName', name)}:{new.get('newTag', tag or 'latest')}"
            docs.append(doc)
    return docs


def containers(doc: Doc) -> list[Doc]:
    if doc["kind"] != "Deployment":
        return []
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


DOCS = render()
BY_KIND: dict[str, dict[str, Doc]] = {}
for _doc in DOCS:
    BY_KIND.setdefault(_doc["kind"], {})[_doc["metadata"]["name"]] = _doc
DEPLOYMENTS = BY_KIND["Deployment"]


def pod_labels(name: str) -> dict[str, str]:
    return DEPLOYMENTS[name]["spec"]["template"]["metadata"]["labels"]


def matches(selector: Doc, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions); {} selects everything."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def container_of(name: str) -> Doc:
    (container,) = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"]
    return container


def policies_for(name: str) -> list[Doc]:
    """The NetworkPolicies that apply to a Deployment's pods."""
    return [p for p in BY_KIND["NetworkPolicy"].values() if matches(p["spec"]["podSelector"], pod_labels(name))]


def selected(selector: Doc) -> set[str]:
    """The Deployments whose pods a selector in this namespace picks."""
    return {name for name in DEPLOYMENTS if matches(selector, pod_labels(name))}


def test_the_kustomization_renders_every_kind_the_deployment_needs() -> None:
    assert set(DEPLOYMENTS) == set(TARGETS)
    assert set(BY_KIND["Service"]) == set(TARGETS)
    assert set(BY_KIND["HorizontalPodAutoscaler"]) == {"api", "batch"}
    assert set(BY_KIND["PodDisruptionBudget"]) == set(TARGETS)
    assert BY_KIND["NetworkPolicy"] and set(BY_KIND["Namespace"]) == {KUSTOMIZATION["namespace"]}
    assert "Secret" not in BY_KIND  # made by hand, never applied from the repository
    assert all(
        doc["metadata"]["namespace"] == KUSTOMIZATION["namespace"] for doc in DOCS if doc["kind"] not in CLUSTER_SCOPED
    )


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_the_loader_renders_what_kubectl_kustomize_renders() -> None:
    """Where kubectl is installed, its kustomize is the reference for render()."""
    done = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    key = lambda doc: (doc["kind"], doc["metadata"]["name"])  # noqa: E731
    real = {key(doc): doc for doc in yaml.safe_load_all(done.stdout) if doc}
    assert real == {key(doc): doc for doc in DOCS}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_follows_the_kubernetes_schema(version: str) -> None:
    for doc in [*DOCS, SECRET_TEMPLATE]:
        # strict: an unknown (e.g. misspelt or misplaced) field is an error, not silently dropped
        kubernetes_validate.validate(copy.deepcopy(doc), version, strict=True)


def test_the_schema_check_rejects_a_misplaced_field() -> None:
    """The validation above is not vacuous: a field at the wrong level fails it."""
    broken = copy.deepcopy(DEPLOYMENTS["api"])
    broken["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_each_deployment_serves_its_own_service_as_compose_does() -> None:
    for name, target in TARGETS.items():
        (container,) = DEPLOYMENTS[name]["spec"]["template"]["spec"]["containers"]
        assert "command" not in container  # keeps the image's entrypoint (it activates the venv)
        assert container["args"] == COMPOSE["services"][name]["command"]
        assert container["args"][:3] == ["bentoml", "serve", target]
        assert container["workingDir"] == COMPOSE["x-service"]["working_dir"]
        assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", 3000)]
    env = {e["name"]: e.get("value") for e in container_of("api")["env"]}
    assert env["SINGLE_MODEL_URL"] == "http://single:3000"
    assert env["BATCH_MODEL_URL"] == "http://batch:3000"


def test_the_model_urls_name_services_that_select_the_model_pods() -> None:
    for name in ("single", "batch"):
        service = BY_KIND["Service"][name]
        assert selected({"matchLabels": service["spec"]["selector"]}) == {name}
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(3000, "http")]
    assert selected({"matchLabels": BY_KIND["Service"]["api"]["spec"]["selector"]}) == {"api"}


def test_every_pod_is_probed_limited_non_root_read_only_and_without_a_token() -> None:
    for name, deployment in DEPLOYMENTS.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == IMAGE_UID == int(COMPOSE["x-service"]["user"].split(":")[0])
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert not pod.get("hostNetwork") and not pod.get("hostPID")
        for container in pod["containers"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/livez", name
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
            assert container["startupProbe"]["httpGet"]["path"] == "/livez", name
            resources = container["resources"]
            assert resources["limits"] == {"cpu": "1", "memory": "768Mi"}, name  # compose: 1 CPU, 768M
            assert resources["requests"]["cpu"] and resources["requests"]["memory"] == "768Mi"
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, name
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert security.get("runAsUser", IMAGE_UID) != 0 and not security.get("privileged")


def test_bentoml_gets_a_writable_empty_dir_wherever_it_writes() -> None:
    """With a read-only root, a path BentoML writes to at start that is not mounted stops the server
    (OSError: Read-only file system, seen when docs/kubernetes.md's check was run without them)."""
    for name, deployment in DEPLOYMENTS.items():
        pod = deployment["spec"]["template"]["spec"]
        empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        # a size limit: a full scratch disk evicts this pod, not its neighbours
        assert all(v["emptyDir"].get("sizeLimit") for v in pod["volumes"] if "emptyDir" in v)
        (container,) = pod["containers"]
        writable = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
        assert writable == WRITABLE, name
        secrets = {v["name"] for v in pod["volumes"] if "secret" in v}
        assert all(m.get("readOnly") for m in container["volumeMounts"] if m["name"] in secrets)


def test_only_the_api_reaches_the_model_services_and_only_the_ingress_reaches_the_api() -> None:
    policies = list(BY_KIND["NetworkPolicy"].values())
    # Everything not opened below is closed: a policy selects every pod for both directions.
    deny_all = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert any(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in deny_all)
    for policy in policies:  # no selector that picks nothing (a typo in a label would do that silently)
        assert selected(policy["spec"]["podSelector"]), policy["metadata"]["name"]

    def ingress_peers(name: str) -> list[Doc]:
        return [
            peer
            for p in policies_for(name)
            for rule in p["spec"].get("ingress", [])
            for peer in rule.get("from", [{"everywhere": True}])  # a rule without `from` admits everything
        ]

    for model in ("single", "batch"):
        peers = ingress_peers(model)
        assert peers
        for peer in peers:
            assert set(peer) == {"podSelector"}, peer  # same namespace only: no namespace or IP block
            assert selected(peer["podSelector"]) == {"api"}
    api_peers = ingress_peers("api")
    assert api_peers
    for peer in api_peers:
        assert set(peer) == {"namespaceSelector", "podSelector"}  # both: the controller's pods in its namespace
        assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
        assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "ingress-nginx"}
        assert not selected(peer["podSelector"])  # not one of ours
    # the model services talk to nobody: no policy opens egress for them
    for model in ("single", "batch"):
        assert not [p for p in policies_for(model) if p["spec"].get("egress")]
    # the API may open connections to the model services (and DNS and PostgreSQL), on their port
    api_egress = [rule for p in policies_for("api") for rule in p["spec"].get("egress", [])]
    to_models = [r for r in api_egress for peer in r.get("to", []) if set(peer) == {"podSelector"}]
    assert {d for r in to_models for peer in r["to"] for d in selected(peer["podSelector"])} == {"single", "batch"}


def test_autoscalers_and_disruption_budgets_target_existing_deployments() -> None:
    for name, hpa in BY_KIND["HorizontalPodAutoscaler"].items():
        target = hpa["spec"]["scaleTargetRef"]
        assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
        assert target["name"] in DEPLOYMENTS, name
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        # the autoscaler owns the replica count: a fixed one would reset it at every apply
        assert "replicas" not in DEPLOYMENTS[target["name"]]["spec"]
        for metric in hpa["spec"]["metrics"]:  # CPU utilisation is relative to the request
            assert metric["resource"]["name"] == "cpu"
            assert container_of(target["name"])["resources"]["requests"]["cpu"]
    assert DEPLOYMENTS["single"]["spec"]["replicas"] >= 2  # not autoscaled: two, so a drain keeps one
    for name, pdb in BY_KIND["PodDisruptionBudget"].items():
        assert selected(pdb["spec"]["selector"]) == {name}
        assert pdb["spec"]["maxUnavailable"] == 1  # never blocks a drain, even with one replica
    for name, deployment in DEPLOYMENTS.items():
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels(name).items()
        assert selected(deployment["spec"]["selector"]) == {name}


def test_every_secret_key_a_pod_reads_is_in_the_template_which_holds_no_value() -> None:
    name = SECRET_TEMPLATE["metadata"]["name"]
    referenced: set[str] = set()
    for deployment in DEPLOYMENTS.values():
        pod = deployment["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == name
                    referenced.add(ref["key"])
            assert "envFrom" not in container  # every key is named, so this check sees them all
        for volume in pod["volumes"]:
            if "secret" in volume:
                assert volume["secret"]["secretName"] == name
                referenced |= {item["key"] for item in volume["secret"]["items"]}
    assert referenced == {"JWT_SECRET_KEY", "ADMISSIONS_JOBS_URL", "users.json"}
    assert set(SECRET_TEMPLATE["stringData"]) == referenced
    assert all(value == "" for value in SECRET_TEMPLATE["stringData"].values())  # never a real secret
    assert "data" not in SECRET_TEMPLATE
    assert "secret.example.yaml" not in KUSTOMIZATION["resources"]
    # only the API holds secrets; the model services need none
    api_env = {e["name"]: e for e in container_of("api")["env"]}
    assert "valueFrom" in api_env["JWT_SECRET_KEY"] and "valueFrom" in api_env["ADMISSIONS_JOBS_URL"]
    assert api_env["ADMISSIONS_USERS_FILE"]["value"] == "/run/secrets/admissions/users.json"
    for model in ("single", "batch"):
        assert not [v for v in DEPLOYMENTS[model]["spec"]["template"]["spec"]["volumes"] if "secret" in v]


def test_one_image_everywhere_with_a_fixed_tag() -> None:
    (image,) = KUSTOMIZATION["images"]
    expected = f"{image['newName']}:{image['newTag']}"
    images = {c["image"] for d in DEPLOYMENTS.values() for c in containers(d)}
    assert images == {expected}
    assert image["newTag"] != "latest"  # pods added by the autoscaler must run the same model


def test_the_namespace_enforces_the_restricted_pod_security_profile() -> None:
    labels = BY_KIND["Namespace"][KUSTOMIZATION["namespace"]]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
