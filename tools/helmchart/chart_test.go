package helmchart

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

const (
	chartDir  = "../../deploy/helm/drawbridge"
	release   = "edge"
	namespace = "gateways"
	fullname  = "edge-drawbridge"
)

// valueSet is one `helm template -f FILE` run and what it must render.
type valueSet struct {
	name string
	file string // relative to the chart; "" for the chart's own values.yaml
	// env holds what the Secrets hold that the chart does not create,
	// so that `drawbridge check` can load the rendered config.
	env map[string]string
	// kinds are the objects the set renders, "Kind/name".
	kinds []string
	// external are Secrets the set refers to but does not render.
	external []string
}

var valueSets = []valueSet{
	{
		name: "default",
		kinds: []string{
			"ConfigMap/" + fullname, "Deployment/" + fullname,
			"PodDisruptionBudget/" + fullname, "Service/" + fullname,
		},
	},
	{
		name: "redis-3-replicas",
		file: "ci/redis-values.yaml",
		env: map[string]string{
			"REDIS_PASSWORD":         "not-a-real-password",
			"DRAWBRIDGE_KEY_PARTNER": "Abcdefghijklmnopqrstuvwxyz0123456789",
			"GITHUB_WEBHOOK_SECRET":  "not-a-real-secret",
		},
		kinds: []string{
			"ConfigMap/" + fullname, "Deployment/" + fullname,
			"NetworkPolicy/" + fullname, "PodDisruptionBudget/" + fullname,
			"Service/" + fullname,
		},
		external: []string{"drawbridge-secrets"},
	},
	{
		name: "agent",
		file: "ci/agent-values.yaml",
		kinds: []string{
			"ConfigMap/" + fullname + "-agent", "Deployment/" + fullname + "-agent",
			"PodDisruptionBudget/" + fullname + "-agent",
		},
		external: []string{"drawbridge-agent-token"},
	},
}

func readValues(t *testing.T, file string) map[string]any {
	t.Helper()
	if file == "" {
		return map[string]any{}
	}
	v, err := common.ReadValuesFile(filepath.Join(chartDir, file))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// helmLint is `helm lint --strict -f FILE`: any message above INFO fails.
func helmLint(vals map[string]any) []support.Message {
	var bad []support.Message
	for _, m := range lint.RunAll(chartDir, vals, namespace).Messages {
		if m.Severity > support.InfoSev {
			bad = append(bad, m)
		}
	}
	return bad
}

// helmTemplate is `helm template edge CHART -n gateways -f FILE`: the
// chart's values coalesced with vals, checked against the chart's schema
// if it has one, rendered by Helm's engine; NOTES.txt and partials left
// out, as `helm template` leaves them out.
func helmTemplate(vals map[string]any) (map[string]string, error) {
	ch, err := loader.Load(chartDir)
	if err != nil {
		return nil, err
	}
	opts := common.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	top, err := util.ToRenderValues(ch, vals, opts, common.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	out, err := engine.Render(ch, top)
	if err != nil {
		return nil, err
	}
	for name := range out {
		if !strings.HasSuffix(name, ".yaml") {
			delete(out, name)
		}
	}
	return out, nil
}

// objects is what one value set rendered, strict-decoded.
type objects struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pvcs        map[string]*corev1.PersistentVolumeClaim
	pdbs        map[string]*policyv1.PodDisruptionBudget
	netpols     map[string]*networkingv1.NetworkPolicy
	names       []string // "Kind/name", sorted
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decode splits the rendered files into documents and decodes each into
// its k8s.io/api type with unknown and duplicate fields as errors: a
// field Kubernetes does not know, a misspelt or misplaced key, a string
// where the API wants a number or an unparsable quantity all fail. This
// stands in for kubeconform: the JSON schemas Kubernetes publishes are
// generated from these same Go types, pinned here by tools/go.sum.
func decode(t *testing.T, rendered map[string]string) objects {
	t.Helper()
	o := objects{
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		pvcs:        map[string]*corev1.PersistentVolumeClaim{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
		netpols:     map[string]*networkingv1.NetworkPolicy{},
	}
	files := make([]string, 0, len(rendered))
	for f := range rendered {
		files = append(files, f)
	}
	slices.Sort(files)
	for _, f := range files {
		for i, doc := range docSep.Split(rendered[f], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s, document %d: %v\n%s", f, i, err, doc)
			}
			var obj metav1.Object
			var target any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				obj, target = d, d
			case "v1 Service":
				s := &corev1.Service{}
				obj, target = s, s
			case "v1 ConfigMap":
				c := &corev1.ConfigMap{}
				obj, target = c, c
			case "v1 Secret":
				s := &corev1.Secret{}
				obj, target = s, s
			case "v1 PersistentVolumeClaim":
				p := &corev1.PersistentVolumeClaim{}
				obj, target = p, p
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				obj, target = p, p
			case "networking.k8s.io/v1 NetworkPolicy":
				p := &networkingv1.NetworkPolicy{}
				obj, target = p, p
			default:
				t.Fatalf("%s, document %d: %s %s is not a kind this test knows", f, i, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
				t.Fatalf("%s, document %d (%s): does not validate against k8s.io/api: %v\n%s", f, i, tm.Kind, err, doc)
			}
			name := obj.GetName()
			if name == "" {
				t.Fatalf("%s, document %d (%s): no metadata.name", f, i, tm.Kind)
			}
			switch v := target.(type) {
			case *appsv1.Deployment:
				o.deployments[name] = v
			case *corev1.Service:
				o.services[name] = v
			case *corev1.ConfigMap:
				o.configMaps[name] = v
			case *corev1.Secret:
				o.secrets[name] = v
			case *corev1.PersistentVolumeClaim:
				o.pvcs[name] = v
			case *policyv1.PodDisruptionBudget:
				o.pdbs[name] = v
			case *networkingv1.NetworkPolicy:
				o.netpols[name] = v
			}
			key := tm.Kind + "/" + name
			if slices.Contains(o.names, key) {
				t.Fatalf("%s rendered twice", key)
			}
			o.names = append(o.names, key)
		}
	}
	slices.Sort(o.names)
	return o
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestValueSets lints and renders the chart with each value set, and
// checks every object it renders.
func TestValueSets(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			vals := readValues(t, vs.file)
			if bad := helmLint(vals); len(bad) > 0 {
				t.Fatalf("helm lint: %v", bad)
			}
			rendered, err := helmTemplate(vals)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			o := decode(t, rendered)
			want := slices.Clone(vs.kinds)
			slices.Sort(want)
			if !slices.Equal(o.names, want) {
				t.Fatalf("rendered %v, want %v", o.names, want)
			}
			checkObjects(t, o, vs.external)
		})
	}
}

// checkObjects holds every Deployment to the chart's promises (security
// context, probes, resources) and checks that the objects refer to one
// another correctly: selectors select, ports and volumes exist.
func checkObjects(t *testing.T, o objects, external []string) {
	t.Helper()
	var podLabels []labels.Set
	for name, d := range o.deployments {
		tpl := d.Spec.Template
		if d.Spec.Selector == nil {
			t.Fatalf("Deployment %s: no selector", name)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(tpl.Labels)) {
			t.Errorf("Deployment %s: selector %v does not select its pods %v (%v)", name, d.Spec.Selector, tpl.Labels, err)
		}
		podLabels = append(podLabels, tpl.Labels)
		ps := tpl.Spec
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("Deployment %s: the service account token is mounted; drawbridge never calls the Kubernetes API", name)
		}
		psc := ps.SecurityContext
		if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
			t.Errorf("Deployment %s: pod security context %+v does not run as a non-root user", name, psc)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("Deployment %s: no RuntimeDefault seccomp profile", name)
		}
		volumes := map[string]corev1.Volume{}
		for _, v := range ps.Volumes {
			volumes[v.Name] = v
			if v.ConfigMap != nil && o.configMaps[v.ConfigMap.Name] == nil {
				t.Errorf("Deployment %s: volume %s mounts ConfigMap %s, which is not rendered", name, v.Name, v.ConfigMap.Name)
			}
			if v.PersistentVolumeClaim != nil && o.pvcs[v.PersistentVolumeClaim.ClaimName] == nil {
				t.Errorf("Deployment %s: volume %s claims %s, which is not rendered", name, v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
		if len(ps.Containers) == 0 {
			t.Fatalf("Deployment %s: no containers", name)
		}
		for _, c := range ps.Containers {
			where := fmt.Sprintf("Deployment %s, container %s", name, c.Name)
			if c.Image == "" {
				t.Errorf("%s: no image", where)
			}
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s: no security context", where)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: privilege escalation allowed", where)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: root filesystem writable", where)
			case sc.Privileged != nil && *sc.Privileged:
				t.Errorf("%s: privileged", where)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("%s: capabilities %+v, want all dropped and none added", where, sc.Capabilities)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: resources %+v lack a CPU or memory request or a memory limit", where, c.Resources)
			}
			for _, m := range c.VolumeMounts {
				if _, ok := volumes[m.Name]; !ok {
					t.Errorf("%s: mount %s names no volume", where, m.Name)
				}
			}
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil && o.secrets[e.SecretRef.Name] == nil && !slices.Contains(external, e.SecretRef.Name) {
					t.Errorf("%s: envFrom Secret %s is neither rendered nor expected", where, e.SecretRef.Name)
				}
			}
			for _, e := range c.Env {
				if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
					s, ok := o.secrets[r.SecretKeyRef.Name]
					switch {
					case ok && s.Data[r.SecretKeyRef.Key] == nil:
						t.Errorf("%s: env %s reads key %s, which Secret %s lacks", where, e.Name, r.SecretKeyRef.Key, s.Name)
					case !ok && !slices.Contains(external, r.SecretKeyRef.Name):
						t.Errorf("%s: env %s reads Secret %s, neither rendered nor expected", where, e.Name, r.SecretKeyRef.Name)
					}
				}
			}
		}
	}
	for name, s := range o.services {
		sel := labels.SelectorFromSet(s.Spec.Selector)
		var pods []labels.Set
		for _, l := range podLabels {
			if sel.Matches(l) {
				pods = append(pods, l)
			}
		}
		if len(s.Spec.Selector) == 0 || len(pods) != 1 {
			t.Errorf("Service %s: selector %v selects %d Deployments' pods, want 1", name, s.Spec.Selector, len(pods))
		}
	}
	for name, p := range o.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		n := 0
		for _, l := range podLabels {
			if err == nil && !sel.Empty() && sel.Matches(l) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("PodDisruptionBudget %s: selects %d Deployments' pods, want 1", name, n)
		}
		if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
			t.Errorf("PodDisruptionBudget %s: want exactly one of minAvailable and maxUnavailable", name)
		}
	}
	for name, np := range o.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		var selected []*appsv1.Deployment
		for _, d := range o.deployments {
			if err == nil && !sel.Empty() && sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				selected = append(selected, d)
			}
		}
		if len(selected) != 1 {
			t.Errorf("NetworkPolicy %s: selects %d Deployments' pods, want 1", name, len(selected))
			continue
		}
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port == nil || port(selected[0].Spec.Template.Spec.Containers[0], p.Port.String()) == 0 {
					t.Errorf("NetworkPolicy %s: port %v is not a named port of %s", name, p.Port, selected[0].Name)
				}
			}
		}
	}
}

// gateway returns the gateway's Deployment and container.
func gateway(t *testing.T, o objects) (*appsv1.Deployment, corev1.Container) {
	t.Helper()
	d := o.deployments[fullname]
	if d == nil || len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("no gateway Deployment %s with one container in %v", fullname, o.names)
	}
	return d, d.Spec.Template.Spec.Containers[0]
}

func port(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// TestGateway checks the gateway's Deployment, Service and config in the
// default and redis sets: replicas, probes on the admin listener, ports
// taken from the config, the config mounted read-only, and a config
// that drawbridge itself accepts.
func TestGateway(t *testing.T) {
	bin := buildDrawbridge(t)
	for _, tc := range []struct {
		set      valueSet
		replicas int32
		strategy appsv1.DeploymentStrategyType
		// unresolved is a route target whose host name only the
		// cluster's DNS knows; see drawbridgeCheck.
		unresolved string
	}{
		{valueSets[0], 1, "", "http://app:3000/"},
		{valueSets[1], 3, "", ""},
	} {
		t.Run(tc.set.name, func(t *testing.T) {
			rendered, err := helmTemplate(readValues(t, tc.set.file))
			if err != nil {
				t.Fatal(err)
			}
			o := decode(t, rendered)
			d, c := gateway(t, o)
			if d.Spec.Replicas == nil || *d.Spec.Replicas != tc.replicas {
				t.Errorf("replicas %v, want %d", d.Spec.Replicas, tc.replicas)
			}
			if d.Spec.Strategy.Type != tc.strategy {
				t.Errorf("strategy %q, want %q", d.Spec.Strategy.Type, tc.strategy)
			}
			if !slices.Equal(c.Args, []string{"serve", "-c", "/etc/drawbridge/drawbridge.yaml"}) {
				t.Errorf("args %q", c.Args)
			}
			if c.Image != "ghcr.io/drawbridge/drawbridge:0.1.0" {
				t.Errorf("image %q, want the chart's appVersion as the tag", c.Image)
			}
			for _, p := range []struct {
				probe *corev1.Probe
				path  string
			}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "admin" {
					t.Errorf("probe %+v, want GET %s on the admin port", p.probe, p.path)
				}
			}

			cm := o.configMaps[fullname]
			var cfg struct {
				Listen string `json:"listen"`
				Admin  string `json:"admin"`
				State  struct {
					Driver string `json:"driver"`
					Path   string `json:"path"`
				} `json:"state"`
			}
			if err := yaml.Unmarshal([]byte(cm.Data["drawbridge.yaml"]), &cfg); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(":", port(c, "http")); got != cfg.Listen {
				t.Errorf("http containerPort %s, config listen %q", got, cfg.Listen)
			}
			if got := fmt.Sprint(":", port(c, "admin")); got != cfg.Admin {
				t.Errorf("admin containerPort %s, config admin %q", got, cfg.Admin)
			}
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m
			}
			if m, ok := mounts["/etc/drawbridge"]; !ok || !m.ReadOnly {
				t.Errorf("config mount %+v, want /etc/drawbridge read-only", m)
			}
			if _, ok := mounts["/var/lib/drawbridge"]; !ok {
				t.Error("no state directory at /var/lib/drawbridge")
			}
			if cfg.State.Driver == "embedded" && filepath.Dir(cfg.State.Path) != "/var/lib/drawbridge" {
				t.Errorf("embedded state file %q is not in the state volume", cfg.State.Path)
			}

			svc := o.services[fullname]
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" {
				t.Errorf("Service ports %+v, want one, to the http port (the admin port stays out)", svc.Spec.Ports)
			}

			if np := o.netpols[fullname]; np != nil {
				// The public port from anywhere, the admin port from the
				// monitoring peer only.
				in := np.Spec.Ingress
				if len(in) != 2 || len(in[0].From) != 0 || in[0].Ports[0].Port.String() != "http" ||
					len(in[1].From) != 1 || in[1].Ports[0].Port.String() != "admin" {
					t.Errorf("NetworkPolicy ingress %+v, want http from all and admin from one peer", in)
				}
			}

			env := map[string]string{}
			for k, v := range tc.set.env {
				env[k] = v
			}
			for _, s := range o.secrets {
				for k, v := range s.Data {
					env[k] = string(v)
				}
			}
			drawbridgeCheck(t, bin, cm.Data["drawbridge.yaml"], env, tc.unresolved)
		})
	}
}

// TestPersistence: persistence.enabled puts the embedded state file on a
// PVC and switches to the Recreate strategy; secretEnv renders a Secret
// the pod reads as environment.
func TestPersistence(t *testing.T) {
	rendered, err := helmTemplate(map[string]any{
		"persistence": map[string]any{"enabled": true, "size": "5Gi"},
		"secretEnv":   map[string]any{"DRAWBRIDGE_KEY_SECRET": "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := decode(t, rendered)
	checkObjects(t, o, nil)
	d, c := gateway(t, o)
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("strategy %q, want Recreate", d.Spec.Strategy.Type)
	}
	pvc := o.pvcs[fullname+"-state"]
	if pvc == nil || pvc.Spec.Resources.Requests.Storage().String() != "5Gi" {
		t.Fatalf("PVC %+v, want %s-state of 5Gi", pvc, fullname)
	}
	var state *corev1.Volume
	for i, v := range d.Spec.Template.Spec.Volumes {
		if v.Name == "state" {
			state = &d.Spec.Template.Spec.Volumes[i]
		}
	}
	if state == nil || state.PersistentVolumeClaim == nil || state.PersistentVolumeClaim.ClaimName != pvc.Name {
		t.Errorf("state volume %+v, want the PVC", state)
	}
	s := o.secrets[fullname+"-env"]
	if s == nil || string(s.Data["DRAWBRIDGE_KEY_SECRET"]) != "x" {
		t.Fatalf("Secret %+v, want %s-env holding DRAWBRIDGE_KEY_SECRET", s, fullname)
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != s.Name {
		t.Errorf("envFrom %+v, want the Secret %s", c.EnvFrom, s.Name)
	}
}

// TestAgent checks the agent's Deployment: its config keys are those of
// `drawbridge agent -c agent.yaml`, its token comes from the Secret into
// the variable token_env names, and it has no Service.
func TestAgent(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vals   map[string]any
		secret string
	}{
		{"existing secret", readValues(t, "ci/agent-values.yaml"), "drawbridge-agent-token"},
		{"chart secret, with the gateway", map[string]any{
			"agent": map[string]any{"enabled": true, "token": map[string]any{"value": "t0ken"}},
		}, fullname + "-agent-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bad := helmLint(tc.vals); len(bad) > 0 {
				t.Fatalf("helm lint: %v", bad)
			}
			rendered, err := helmTemplate(tc.vals)
			if err != nil {
				t.Fatal(err)
			}
			o := decode(t, rendered)
			checkObjects(t, o, []string{"drawbridge-agent-token"})
			d := o.deployments[fullname+"-agent"]
			if d == nil || len(d.Spec.Template.Spec.Containers) != 1 {
				t.Fatalf("no agent Deployment in %v", o.names)
			}
			c := d.Spec.Template.Spec.Containers[0]
			if !slices.Equal(c.Args, []string{"agent", "-c", "/etc/drawbridge/agent.yaml"}) {
				t.Errorf("args %q", c.Args)
			}
			if len(c.Ports) != 0 {
				t.Errorf("ports %+v: the agent dials out and listens on nothing", c.Ports)
			}
			var cfg map[string]any
			if err := yaml.UnmarshalStrict([]byte(o.configMaps[fullname+"-agent"].Data["agent.yaml"]), &cfg); err != nil {
				t.Fatal(err)
			}
			keys := make([]string, 0, len(cfg))
			for k := range cfg {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if want := []string{"connections", "edge", "egress", "name", "token_env"}; !slices.Equal(keys, want) {
				t.Errorf("agent.yaml keys %v, want %v", keys, want)
			}
			if len(c.Env) == 0 || c.Env[0].Name != cfg["token_env"] || c.Env[0].ValueFrom == nil ||
				c.Env[0].ValueFrom.SecretKeyRef == nil || c.Env[0].ValueFrom.SecretKeyRef.Name != tc.secret {
				t.Errorf("env %+v, want %v from Secret %s", c.Env, cfg["token_env"], tc.secret)
			}
			for _, s := range o.services {
				if s.Spec.Selector["app.kubernetes.io/component"] == "agent" {
					t.Errorf("Service %s selects the agent", s.Name)
				}
			}
		})
	}
}

// TestRefusals: values that would deploy a broken gateway fail `helm
// template` (and so `helm install`) with a message that says what to do.
// `helm lint` does not: in lint mode Helm's `fail` only logs.
func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		vals string
		want string
	}{
		{"replicas with embedded", "replicaCount: 3", `replicaCount is 3 but config.state.driver is "embedded": more than one replica needs the redis driver`},
		{"replicas with memory", "replicaCount: 2\nconfig: {state: {driver: memory}}", `replicaCount is 2 but config.state.driver is "memory"`},
		{"replicas without a driver", "replicaCount: 2\nconfig: {state: null}", `config.state.driver is "embedded"`},
		{"loopback admin", `config: {admin: "127.0.0.1:9090"}`, `config.admin is "127.0.0.1:9090": the kubelet probes`},
		{"admin off", `config: {admin: "off"}`, `config.admin is "off"`},
		{"persistence with redis", "config: {state: {driver: redis, url: redis://r:6379/0}}\npersistence: {enabled: true}", `persistence.enabled keeps the embedded driver's state file, but config.state.driver is "redis"`},
		{"agent without a token", "agent: {enabled: true}", "agent.token: set existingSecret (and key) or value, exactly one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals, err := common.ReadValues([]byte(tc.vals))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := helmTemplate(vals); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("helm template: error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// With the redis driver, three replicas pass (TestValueSets renders
	// the whole set); here only the driver changes.
	vals, err := common.ReadValues([]byte("replicaCount: 3\nconfig: {state: {driver: redis, url: redis://r:6379/0}}"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := helmTemplate(vals); err != nil {
		t.Errorf("replicas with redis: %v", err)
	}
}

// buildDrawbridge builds the drawbridge binary of this checkout, so the
// rendered config is checked by the code that will read it.
func buildDrawbridge(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "drawbridge")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/drawbridge")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/drawbridge: %v\n%s", err, out)
	}
	return bin
}

// drawbridgeCheck runs `drawbridge check` on a rendered drawbridge.yaml
// with env as the environment the pod would have. Without egress.allow,
// drawbridge resolves each route target's host name when it starts, and a
// Service name such as "app" resolves only inside the cluster. So for a
// config whose target unresolved names such a host, the one failure
// accepted is that lookup: check reports it only after the whole config
// has loaded and validated (a config error exits before, with
// FILE:LINE lines).
func drawbridgeCheck(t *testing.T, bin, config string, env map[string]string, unresolved string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "drawbridge.yaml")
	if err := os.WriteFile(f, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "check", "-c", f)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		return
	}
	// Warnings and notes may come first; the lookup failure ends it.
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	last := lines[len(lines)-1]
	if unresolved != "" && strings.Contains(last, fmt.Sprintf(": egress default: target %q: resolve ", unresolved)) {
		t.Logf("drawbridge check: the config loaded; its target's name resolves only in a cluster: %s", stderr.String())
		return
	}
	t.Fatalf("drawbridge check: %v\n%s%s\n%s", err, out, stderr.String(), config)
}
