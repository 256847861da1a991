// Command trim-external-dns narrows a copy of ExternalDNS's source to the DNS providers
// our tests use, so that building the test peer downloads and compiles a fraction of
// the cloud SDKs (tests/peers/build-external-dns.sh; docs/interop.md).
//
// Usage: trim-external-dns -keep coredns,inmemory,webhook DIR
//
// In every non-test Go file of DIR that imports three or more provider
// packages (the provider selection: controller/execute.go up to v0.20,
// provider/factory/provider.go from v0.21), it removes the map elements and switch cases
// that name a dropped provider package, then the imports nothing uses any more (and
// marks the locals only those cases read as used). Any
// other use of a dropped package is an error: the build then stops instead of producing
// a binary whose behaviour was changed somewhere we did not look. Provider directories
// are left in place; a package nobody imports is neither downloaded nor compiled.
//
// A test peer's build tool, never part of kubefed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const providerPrefix = "sigs.k8s.io/external-dns/provider/"

// Packages under provider/ that are not DNS providers.
var notProviders = map[string]bool{"factory": true, "blueprint": true, "fakes": true}

func main() {
	keep := flag.String("keep", "coredns,inmemory,webhook", "providers to keep (comma-separated directory names under provider/)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: trim-external-dns -keep a,b DIR")
		os.Exit(2)
	}
	kept := map[string]bool{}
	for _, k := range strings.Split(*keep, ",") {
		kept[strings.TrimSpace(k)] = true
	}
	root := flag.Arg(0)
	changed := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "vendor" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		did, err := trimFile(path, kept)
		if did {
			changed++
			fmt.Printf("trimmed providers in %s\n", rel)
		}
		return err
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "trim-external-dns:", err)
		os.Exit(1)
	}
	if changed == 0 {
		fmt.Fprintln(os.Stderr, "trim-external-dns: found no provider selection to trim")
		os.Exit(1)
	}
}

// providerDir is "aws" for ".../provider/aws" and ".../provider/aws/sub", "" otherwise.
func providerDir(importPath string) string {
	if !strings.HasPrefix(importPath, providerPrefix) {
		return ""
	}
	return strings.SplitN(strings.TrimPrefix(importPath, providerPrefix), "/", 2)[0]
}

func trimFile(path string, kept map[string]bool) (bool, error) {
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
	if err != nil {
		return false, err
	}
	// Local names of the dropped provider packages imported by this file.
	dropped := map[string]bool{}
	for _, imp := range file.Imports {
		p, _ := strconv.Unquote(imp.Path.Value)
		dir := providerDir(p)
		if dir == "" || notProviders[dir] || kept[dir] {
			continue
		}
		name := p[strings.LastIndex(p, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		dropped[name] = true
	}
	// A provider selection names many providers; a file importing one or two (the
	// dynamodb registry importing the aws provider) is left alone.
	if len(dropped) < 3 {
		return false, nil
	}
	uses := func(n ast.Node) bool {
		found := false
		ast.Inspect(n, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if id, ok := sel.X.(*ast.Ident); ok && dropped[id.Name] {
					found = true
				}
			}
			return !found
		})
		return found
	}
	usedBefore := selectorNames(file)
	countsBefore := identCounts(file)
	var removed []ast.Node
	drop := func(n ast.Node) bool {
		if uses(n) {
			removed = append(removed, n)
			return true
		}
		return false
	}
	ast.Inspect(file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			n.Elts = filter(n.Elts, func(e ast.Expr) bool { return !drop(e) })
		case *ast.BlockStmt:
			n.List = filter(n.List, func(s ast.Stmt) bool {
				cc, ok := s.(*ast.CaseClause)
				return !ok || !drop(cc)
			})
		}
		return true
	})
	// Comments inside removed code would otherwise float into what remains.
	file.Comments = filter(file.Comments, func(c *ast.CommentGroup) bool {
		for _, r := range removed {
			if c.Pos() >= r.Pos() && c.End() <= r.End() {
				return false
			}
		}
		return true
	})
	// What is left must not use a dropped package.
	var leftover []string
	ast.Inspect(file, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && dropped[id.Name] {
				leftover = append(leftover, fmt.Sprintf("%s: %s.%s", fset.Position(sel.Pos()), id.Name, sel.Sel.Name))
			}
		}
		return true
	})
	if len(leftover) > 0 {
		return false, fmt.Errorf("dropped providers still used outside a map element or switch case:\n  %s", strings.Join(leftover, "\n  "))
	}
	removeNewlyUnusedImports(file, usedBefore)
	keepNewlyUnusedLocals(file, countsBefore)
	var buf bytes.Buffer
	if err := format.Node(&buf, fset, file); err != nil {
		return false, err
	}
	return true, os.WriteFile(path, buf.Bytes(), 0o644)
}

func filter[T any](xs []T, keep func(T) bool) []T {
	out := xs[:0]
	for _, x := range xs {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// identCounts counts the identifiers of each function body by name, keyed by function.
func identCounts(file *ast.File) map[*ast.FuncDecl]map[string]int {
	out := map[*ast.FuncDecl]map[string]int{}
	for _, d := range file.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		counts := map[string]int{}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			if id, ok := n.(*ast.Ident); ok {
				counts[id.Name]++
			}
			return true
		})
		out[fd] = counts
	}
	return out
}

// keepNewlyUnusedLocals adds `_ = x` after the top-level `x := ...` of a function whose
// only remaining uses were in removed cases (zone filters that only dropped providers
// read): Go refuses a declared and unused variable.
func keepNewlyUnusedLocals(file *ast.File, before map[*ast.FuncDecl]map[string]int) {
	after := identCounts(file)
	for fd, was := range before {
		now := after[fd]
		var list []ast.Stmt
		for _, st := range fd.Body.List {
			list = append(list, st)
			as, ok := st.(*ast.AssignStmt)
			if !ok || as.Tok != token.DEFINE {
				continue
			}
			for _, lhs := range as.Lhs {
				if id, ok := lhs.(*ast.Ident); ok && id.Name != "_" && was[id.Name] > 1 && now[id.Name] == 1 {
					list = append(list, &ast.AssignStmt{
						Lhs: []ast.Expr{ast.NewIdent("_")},
						Tok: token.ASSIGN,
						Rhs: []ast.Expr{ast.NewIdent(id.Name)},
					})
				}
			}
		}
		fd.Body.List = list
	}
}

// selectorNames is the set of identifiers used as the X of a selector (pkg.Name).
func selectorNames(file *ast.File) map[string]bool {
	used := map[string]bool{}
	ast.Inspect(file, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		}
		return true
	})
	return used
}

// removeNewlyUnusedImports drops the imports whose name the file used before the trim
// and uses no more. An import whose package name we guess wrong is in neither set and
// stays: a wrong guess can leave an import (a loud compile error), never drop a used one.
func removeNewlyUnusedImports(file *ast.File, usedBefore map[string]bool) {
	usedAfter := selectorNames(file)
	keep := func(imp *ast.ImportSpec) bool {
		name := ""
		if imp.Name != nil {
			name = imp.Name.Name
		} else {
			p, _ := strconv.Unquote(imp.Path.Value)
			name = p[strings.LastIndex(p, "/")+1:]
		}
		return !usedBefore[name] || usedAfter[name]
	}
	for _, d := range file.Decls {
		if gd, ok := d.(*ast.GenDecl); ok && gd.Tok == token.IMPORT {
			gd.Specs = filter(gd.Specs, func(s ast.Spec) bool { return keep(s.(*ast.ImportSpec)) })
		}
	}
	file.Imports = filter(file.Imports, keep)
}
