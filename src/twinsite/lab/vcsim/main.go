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
	"regexp"
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
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(snapEntity.ReplaceAll(rec.Body.Bytes(), nil))
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

// shape renames the generated DC0/DC1 inventory into the lab's DR and production sites.
func shape(ctx context.Context, u *url.URL) {
	c, err := govmomi.NewClient(ctx, u, true)
	must(err, "login")
	defer func() { _ = c.Logout(ctx) }()
	f := find.NewFinder(c.Client, true)
	sites := []struct{ dc, name, site, cluster, keep, drop string }{
		{"DC0", "DR", "dr", "DR-Cluster", "linux-template", "DC0_C0_RP0_VM1"},
		{"DC1", "Prod", "prod", "Prod-Cluster", "prod1-vm", "DC1_C0_RP0_VM1"},
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
		}
		for i := 0; i < 3; i++ {
			h, err := f.HostSystem(ctx, fmt.Sprintf("%s_C0_H%d", s.dc, i))
			must(err, "host")
			// HostSystem has no Rename_Task in the 0.24 simulator: rename it in the registry.
			obj := simulator.Map.Get(h.Reference())
			simulator.Map.Update(obj, []types.PropertyChange{{Name: "name", Val: fmt.Sprintf("esx-%s-%d", s.site, i+1)}})
		}
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
