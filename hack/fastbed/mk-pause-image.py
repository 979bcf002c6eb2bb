import hashlib, json, tarfile, io, os, gzip
pause = open('/var/cache/kinit-test/bundle-bin/pause','rb').read()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo('pause'); ti.size=len(pause); ti.mode=0o755; ti.mtime=0
    t.addfile(ti, io.BytesIO(pause))
layer = buf.getvalue()
diffid = 'sha256:'+hashlib.sha256(layer).hexdigest()
blobs = {}
def add(b):
    d = hashlib.sha256(b).hexdigest(); blobs[d]=b; return 'sha256:'+d, len(b)
ld, ls = add(layer)
cfg = json.dumps({"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},
    "rootfs":{"type":"layers","diff_ids":[diffid]},"history":[{"created_by":"kinit fastbed: static pause"}]}).encode()
cd, cs = add(cfg)
man = json.dumps({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
  "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":cd,"size":cs},
  "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":ld,"size":ls}]}).encode()
md, ms = add(man)
name = 'registry.k8s.io/pause:3.10.1'
index = {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":md,"size":ms,
  "annotations":{"io.containerd.image.name":name,"org.opencontainers.image.ref.name":"3.10.1"},"platform":{"architecture":"amd64","os":"linux"}}]}
with tarfile.open('pause-oci.tar','w') as t:
    def put(n,b):
        ti=tarfile.TarInfo(n); ti.size=len(b); ti.mode=0o644; t.addfile(ti, io.BytesIO(b))
    put('oci-layout', b'{"imageLayoutVersion":"1.0.0"}')
    put('index.json', json.dumps(index).encode())
    for d,b in blobs.items(): put('blobs/sha256/'+d, b)
print(md)
