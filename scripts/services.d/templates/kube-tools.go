package main

// Built by scripts/services.d/kube.sh: importing both commands makes `go mod tidy` resolve
// every module they need.
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)
