//go:build !linux

package rie
