// vcsim-lab: the twinsite lab's vCenter, built on the govmomi 0.24 simulator from Debian's
// golang-github-vmware-govmomi-dev (GOPATH mode, no download).
//
// Inventory (a DR-shaped site):
//
//	/DR                 datacenter of the DR site
//	  DR-Cluster        ESX hosts esx-dr-1..3, datastore LocalDS_0
//	  linux-template    template VM that replica VMs are cloned from
//	/Prod               datacenter of the production site
//	  Prod-Cluster      ESX hosts esx-prod-1..3
//	  prod1-vm          a production VM (the source of a V2V replica)
//
// It serves HTTPS with the certificate given by -cert/-key (the lab signs it with its own CA, so
// clients keep certificate validation on) and accepts exactly one user (-user/-password).
//
// fetchFix works around two simulator quirks seen from pyVmomi >= 8:
//  1. PropertyCollector.Fetch panics when the property is unset (vm.snapshot with no snapshots)
//     and drops the connection: answer an empty FetchResponse instead (pyVmomi returns None).
//  2. Snapshot tasks carry TaskInfo.entity of type VirtualMachineSnapshot, which pyVmomi rejects
//     ("expected type vim.ManagedEntity"): drop that optional element from responses.
//
// and keepDasDrs (called by fetchFix) makes ReconfigureComputeResource_Task keep HA and DRS settings,
// which the 0.24 simulator accepts but drops (see keepDasDrs for why it works at the SOAP level).
//
// shape also gives the hosts a realistic capacity (DR 32 cores/256 GiB, production 16 cores/128 GiB)
// and prod1-vm the size of a real server (4 vCPUs, 8 GiB).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"regexp"
	"strings"
	"syscall"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type fetchFix struct{ h http.Handler }

var snapEntity = regexp.MustCompile(`<entity type="VirtualMachineSnapshot">[^<]*</entity>`)

const emptyFetch = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><FetchResponse xmlns="urn:vim25"></FetchResponse></soapenv:Body></soapenv:Envelope>`

func (f fetchFix) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	defer func() {
		if e := recover(); e != nil {
			if !bytes.Contains(body, []byte("<Fetch")) {
				panic(e)
			}
			w.Header().Set("Content-Type", "text/xml; charset=utf-8")
			_, _ = io.WriteString(w, emptyFetch)
		}
	}()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, r)
	if bytes.Contains(body, []byte("ReconfigureComputeResource_Task")) {
		keepDasDrs(body, rec.Body.Bytes())
	}
	if bytes.Contains(body, []byte("RelocateVM_Task")) {
		fixRelocate(body, rec.Body.Bytes())
	}
	if bytes.Contains(body, []byte("Destroy_Task")) {
		dropFromRules(body, rec.Body.Bytes())
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(snapEntity.ReplaceAll(rec.Body.Bytes(), nil))
}

// keepDasDrs stores spec.dasConfig and spec.drsConfig of a ReconfigureComputeResource_Task that
// succeeded into the cluster's configurationEx; the simulator itself applies only rulesSpec,
// groupSpec, dasVmConfigSpec and drsVmConfigSpec. It runs here, after the simulator's own handler
// and before the response leaves, rather than in a wrapper type registered in place of the cluster:
// the simulator type-switches on *simulator.ClusterComputeResource in several places (placing a new
// VM on a host, hostParent, SearchIndex, EnvironmentBrowser), which another type would break.
// A failed task (a duplicate rule name, say) or a refused call (no session) stores nothing.
func keepDasDrs(req, res []byte) {
	m, err := simulator.UnmarshalBody(vimType, req)
	if err != nil {
		return
	}
	call, ok := m.Body.(*types.ReconfigureComputeResource_Task)
	if !ok {
		return
	}
	spec, isEx := call.Spec.(*types.ClusterConfigSpecEx)
	cl, isCluster := simulator.Map.Get(m.This).(*simulator.ClusterComputeResource)
	ref := taskRef.FindSubmatch(res)
	if !isEx || !isCluster || ref == nil || (spec.DasConfig == nil && spec.DrsConfig == nil) {
		return
	}
	task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: string(ref[1])}).(*simulator.Task)
	if !ok || task.Info.State != types.TaskInfoStateSuccess {
		return
	}
	simulator.Map.WithLock(cl, func() {
		cfg := cl.ConfigurationEx.(*types.ClusterConfigInfoEx)
		if spec.DasConfig != nil {
			if !call.Modify { // modify=false: the given config replaces the stored one
				cfg.DasConfig = types.ClusterDasConfigInfo{}
			}
			mergeSet(reflect.ValueOf(&cfg.DasConfig).Elem(), reflect.ValueOf(spec.DasConfig).Elem())
		}
		if spec.DrsConfig != nil {
			if !call.Modify {
				cfg.DrsConfig = types.ClusterDrsConfigInfo{}
			}
			mergeSet(reflect.ValueOf(&cfg.DrsConfig).Elem(), reflect.ValueOf(spec.DrsConfig).Elem())
		}
		// Tell the PropertyCollector (WaitForUpdates clients) that configurationEx changed.
		simulator.Map.Update(cl, []types.PropertyChange{{Name: "configurationEx", Val: cfg}})
	})
}

// fixRelocate repairs the host's and the resource pool's lists of VMs after a RelocateVM_Task that
// succeeded: the 0.24 simulator moves vm.runtime.host and vm.resourcePool but leaves the VM in the old
// host's and pool's lists (and not in the new ones), so that container views keep listing a VM that was
// moved and then removed, and every read of it fails with ManagedObjectNotFound.
func fixRelocate(req, res []byte) {
	m, err := simulator.UnmarshalBody(vimType, req)
	if err != nil {
		return
	}
	if _, ok := m.Body.(*types.RelocateVM_Task); !ok {
		return
	}
	vm, isVM := simulator.Map.Get(m.This).(*simulator.VirtualMachine)
	ref := taskRef.FindSubmatch(res)
	if !isVM || ref == nil {
		return
	}
	task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: string(ref[1])}).(*simulator.Task)
	if !ok || task.Info.State != types.TaskInfoStateSuccess {
		return
	}
	self := vm.Reference()
	for _, e := range simulator.Map.All("HostSystem") {
		h := e.(*simulator.HostSystem)
		if vm.Runtime.Host != nil && h.Reference() == *vm.Runtime.Host {
			simulator.Map.AddReference(h, &h.Vm, self)
		} else {
			simulator.Map.RemoveReference(h, &h.Vm, self)
		}
	}
	for _, e := range simulator.Map.All("ResourcePool") {
		p := e.(*simulator.ResourcePool)
		if vm.ResourcePool != nil && p.Reference() == *vm.ResourcePool {
			simulator.Map.AddReference(p, &p.Vm, self)
		} else {
			simulator.Map.RemoveReference(p, &p.Vm, self)
		}
	}
}

// dropFromRules takes a VM that a Destroy_Task removed out of every cluster's VM-VM rules, as vCenter
// does; the 0.24 simulator leaves the dangling reference, and reading the rule's VMs then fails.
func dropFromRules(req, res []byte) {
	m, err := simulator.UnmarshalBody(vimType, req)
	if err != nil || m.This.Type != "VirtualMachine" {
		return
	}
	if _, ok := m.Body.(*types.Destroy_Task); !ok {
		return
	}
	ref := taskRef.FindSubmatch(res)
	if ref == nil {
		return
	}
	task, ok := simulator.Map.Get(types.ManagedObjectReference{Type: "Task", Value: string(ref[1])}).(*simulator.Task)
	if !ok || task.Info.State != types.TaskInfoStateSuccess {
		return
	}
	for _, e := range simulator.Map.All("ClusterComputeResource") {
		cl := e.(*simulator.ClusterComputeResource)
		simulator.Map.WithLock(cl, func() {
			for _, r := range cl.ConfigurationEx.(*types.ClusterConfigInfoEx).Rule {
				switch rule := r.(type) {
				case *types.ClusterAntiAffinityRuleSpec:
					simulator.RemoveReference(&rule.Vm, m.This)
				case *types.ClusterAffinityRuleSpec:
					simulator.RemoveReference(&rule.Vm, m.This)
				}
			}
		})
	}
}

var taskRef = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)

// vimType resolves xsi:type names, also prefixed ones ("vim25:ClusterConfigSpecEx"), as the simulator does.
func vimType(name string) (reflect.Type, bool) {
	return types.TypeFunc()(name[strings.LastIndex(name, ":")+1:])
}

// mergeSet is vCenter's modify=true merge of a data object: each field set in src (a non-nil
// pointer, interface or slice, a non-empty string, a non-zero number) replaces the one in dst, and
// unset fields keep dst's value. Nested data objects (defaultVmSettings) are merged the same way,
// into a copy, so values shared with a request are never modified.
func mergeSet(dst, src reflect.Value) {
	for i := 0; i < src.NumField(); i++ {
		s, d := src.Field(i), dst.Field(i)
		switch {
		case s.IsZero() || src.Type().Field(i).Anonymous: // unset, or the embedded DynamicData
		case s.Kind() == reflect.Ptr && s.Elem().Kind() == reflect.Struct && !d.IsNil():
			merged := reflect.New(s.Elem().Type())
			merged.Elem().Set(d.Elem())
			mergeSet(merged.Elem(), s.Elem())
			d.Set(merged)
		default:
			d.Set(s)
		}
	}
}

func must(err error, what string) {
	if err != nil {
		log.Fatalf("shaping the lab inventory: %s: %v", what, err)
	}
}

func wait(ctx context.Context, t *object.Task, err error, what string) {
	must(err, what)
	must(t.Wait(ctx), what)
}

// sizeHost gives a host a realistic capacity: two sockets of cores/2 cores with hyper-threading at
// 2.6 GHz, and memGiB of memory. It sets new copies of the summary and hardware structs, so no value
// shared with the simulator's esx templates or another host is modified.
func sizeHost(h *simulator.HostSystem, cores int16, memGiB int64) {
	const mhz = 2600
	simulator.Map.WithLock(h, func() {
		sum := *h.Summary.Hardware
		sum.NumCpuPkgs, sum.NumCpuCores, sum.NumCpuThreads = 2, cores, 2*cores
		sum.CpuMhz, sum.MemorySize = mhz, memGiB<<30
		h.Summary.Hardware = &sum
		hw := *h.Hardware
		hw.CpuInfo.NumCpuPackages, hw.CpuInfo.NumCpuCores, hw.CpuInfo.NumCpuThreads = 2, cores, 2*cores
		hw.CpuInfo.Hz = mhz * 1000 * 1000
		hw.MemorySize = memGiB << 30
		h.Hardware = &hw
	})
}

// sumCluster recomputes the cluster's capacity totals from its (resized) hosts, as vCenter reports
// them: totalCpu in MHz (cores x MHz), totalMemory in bytes, effectiveMemory in MB.
func sumCluster(cl *simulator.ClusterComputeResource) {
	simulator.Map.WithLock(cl, func() {
		s := cl.Summary.GetComputeResourceSummary()
		s.TotalCpu, s.TotalMemory, s.NumCpuCores, s.NumCpuThreads, s.EffectiveCpu, s.EffectiveMemory = 0, 0, 0, 0, 0, 0
		for _, ref := range cl.Host {
			hw := simulator.Map.Get(ref).(*simulator.HostSystem).Summary.Hardware
			s.TotalCpu += int32(hw.NumCpuCores) * hw.CpuMhz
			s.TotalMemory += hw.MemorySize
			s.NumCpuCores += hw.NumCpuCores
			s.NumCpuThreads += hw.NumCpuThreads
		}
		s.EffectiveCpu, s.EffectiveMemory = s.TotalCpu, s.TotalMemory>>20
	})
}

// shape renames the generated DC0/DC1 inventory into the lab's DR and production sites.
func shape(ctx context.Context, u *url.URL) {
	c, err := govmomi.NewClient(ctx, u, true)
	must(err, "login")
	defer func() { _ = c.Logout(ctx) }()
	f := find.NewFinder(c.Client, true)
	sites := []struct {
		dc, name, site, cluster, keep, drop string
		cores                               int16 // per host
		memGiB                              int64 // per host
	}{
		{"DC0", "DR", "dr", "DR-Cluster", "linux-template", "DC0_C0_RP0_VM1", 32, 256},
		{"DC1", "Prod", "prod", "Prod-Cluster", "prod1-vm", "DC1_C0_RP0_VM1", 16, 128},
	}
	for _, s := range sites {
		dc, err := f.Datacenter(ctx, s.dc)
		must(err, s.dc)
		f.SetDatacenter(dc)
		cl, err := f.ClusterComputeResource(ctx, s.dc+"_C0")
		must(err, s.dc+"_C0")
		vm, err := f.VirtualMachine(ctx, s.dc+"_C0_RP0_VM0")
		must(err, s.dc+" VM0")
		extra, err := f.VirtualMachine(ctx, s.drop)
		must(err, s.drop)
		t, err := extra.PowerOff(ctx)
		wait(ctx, t, err, "power off "+s.drop)
		t, err = extra.Destroy(ctx)
		wait(ctx, t, err, "destroy "+s.drop)
		t, err = vm.Rename(ctx, s.keep)
		wait(ctx, t, err, "rename VM0")
		if s.name == "DR" {
			t, err = vm.PowerOff(ctx)
			wait(ctx, t, err, "power off the template")
			must(vm.MarkAsTemplate(ctx), "mark as template")
		} else { // the production server a V2V replica is sized from
			t, err = vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{NumCPUs: 4, MemoryMB: 8192})
			wait(ctx, t, err, "size "+s.keep)
		}
		for i := 0; i < 3; i++ {
			h, err := f.HostSystem(ctx, fmt.Sprintf("%s_C0_H%d", s.dc, i))
			must(err, "host")
			// HostSystem has no Rename_Task in the 0.24 simulator: rename it in the registry.
			obj := simulator.Map.Get(h.Reference())
			name := fmt.Sprintf("esx-%s-%d", s.site, i+1)
			simulator.Map.Update(obj, []types.PropertyChange{{Name: "name", Val: name}, {Name: "summary.config.name", Val: name}})
			sizeHost(obj.(*simulator.HostSystem), s.cores, s.memGiB)
		}
		sumCluster(simulator.Map.Get(cl.Reference()).(*simulator.ClusterComputeResource))
		t, err = cl.Rename(ctx, s.cluster)
		wait(ctx, t, err, "rename cluster")
		t, err = dc.Rename(ctx, s.name)
		wait(ctx, t, err, "rename datacenter")
	}
}

func main() {
	listen := flag.String("l", "127.0.0.1:8989", "listen host:port")
	cert := flag.String("cert", "", "PEM certificate (chain) to serve; empty = a throw-away self-signed one")
	key := flag.String("key", "", "PEM private key of -cert")
	user := flag.String("user", "administrator@vsphere.local", "the one user accepted")
	passFile := flag.String("password-file", "", "file holding the one password accepted")
	flag.Parse()

	pass := "lab"
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		must(err, "password file")
		pass = string(bytes.TrimSpace(b))
	}

	model := simulator.VPX()
	model.Datacenter = 2
	model.Cluster = 1
	model.ClusterHost = 3
	model.Host = 0
	model.Machine = 2
	must(model.Create(), "create the model")
	defer model.Remove() // deletes the temp datastore dirs ($TMPDIR/govcsim-*)

	tlsConf := new(tls.Config)
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		must(err, "certificate")
		tlsConf.Certificates = []tls.Certificate{pair}
	}
	model.Service.TLS = tlsConf
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, pass)}
	s := model.Service.NewServer()
	defer s.Close()
	s.Config.Handler = fetchFix{s.Config.Handler}

	shape(context.Background(), s.URL)
	fmt.Printf("ready https://%s/sdk\n", *listen)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
