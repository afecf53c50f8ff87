package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/textproto"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ragplane/ragplane"
)

// ingestFile is a local file to upload and the name it is stored under as its source.
type ingestFile struct {
	path   string // as given or found: for reading, never sent
	source string // the file's name, or its path inside a directory given on the command line
}

// ingestResult is one file's outcome, as -o json prints it.
type ingestResult struct {
	File       string    `json:"file"`
	Source     string    `json:"source"`
	DocumentID string    `json:"document_id,omitempty"`
	Chunks     int       `json:"chunks"`
	Duplicate  bool      `json:"duplicate,omitempty"`
	Status     string    `json:"status,omitempty"`
	Error      *fileFail `json:"error,omitempty"`
}

// fileFail says why a file was not ingested.
type fileFail struct {
	Status int    `json:"status,omitempty"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// ingestReport is what -o json prints after an ingest.
type ingestReport struct {
	Files    []ingestResult `json:"files"`
	Ingested int            `json:"ingested"`
	Failed   int            `json:"failed"`
	Chunks   int            `json:"chunks"`
}

// expandFiles lists the files to ingest: files as given, and every regular file under a
// directory (recursively, skipping hidden files and directories), in a stable order.
func expandFiles(args []string) ([]ingestFile, error) {
	var out []ingestFile
	for _, a := range args {
		info, err := os.Stat(a)
		if err != nil {
			return nil, usageError(err)
		}
		if !info.IsDir() {
			out = append(out, ingestFile{path: a, source: filepath.Base(a)})
			continue
		}
		var found []ingestFile
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != a && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			rel, err := filepath.Rel(a, p)
			if err != nil {
				return err
			}
			found = append(found, ingestFile{path: p, source: filepath.ToSlash(rel)})
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Slice(found, func(i, j int) bool { return found[i].source < found[j].source })
		out = append(out, found...)
	}
	if len(out) == 0 {
		return nil, usageError(errors.New("no files to ingest"))
	}
	return out, nil
}

// isTerminal is true when w is a terminal (a progress bar can redraw itself there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func newIngestCommand(cli *cliContext) *cobra.Command {
	var f tenantFlags
	var continueOnError bool
	cmd := &cobra.Command{
		Use:   "ingest FILE|DIR...",
		Short: "Upload documents (text, Markdown, HTML, PDF) through the proxy ($RAGPLANE_TOKEN or $RAGPLANE_API_KEY)",
		Long: `Upload documents (text, Markdown, HTML, PDF) through the proxy. A directory is walked for every
regular file (hidden files and directories skipped). Each document's source is the file's
name (for a file inside a given directory, its path inside that directory), never the local
absolute path.

On a terminal, a progress bar on stderr; otherwise one plain line per file. -o json prints every
file's result with its document id. The first failure stops the upload unless
--continue-on-error, which uploads the rest and still exits non-zero if any file failed.`,
		Example: `  RAGPLANE_API_KEY=rpk_... ragplane ingest docs/
  ragplane ingest policy.pdf handbook.md --continue-on-error
  ragplane ingest docs/ -o json | jq -r '.files[].document_id'
  ragplane ingest --worker --tenant acme_corp docs/`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := expandFiles(args)
			if err != nil {
				return err
			}
			w, err := newDataClient(cmd.Context(), cli, f.worker, f.tenant)
			if err != nil {
				return err
			}
			stderr := cmd.ErrOrStderr()
			var bar *progressbar.ProgressBar
			if isTerminal(stderr) {
				bar = progressbar.NewOptions(len(files),
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("ingesting"),
					progressbar.OptionShowCount(),
					progressbar.OptionSetWidth(30),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionShowElapsedTimeOnFinish(),
					progressbar.OptionSetRenderBlankState(true),
					progressbar.OptionThrottle(50*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
				)
			}
			report := ingestReport{Files: make([]ingestResult, 0, len(files))}
			var first error
			for i, file := range files {
				if bar != nil {
					bar.Describe(fmt.Sprintf("ingesting %-30s", truncate(file.source, 30)))
				}
				res, err := ingestOne(cmd, w, file)
				report.Files = append(report.Files, res)
				if err != nil {
					report.Failed++
					if first == nil {
						first = fmt.Errorf("%s: %w", file.path, err)
					}
				} else {
					report.Ingested++
					report.Chunks += res.Chunks
				}
				if !cli.structured() {
					if bar != nil {
						bar.Clear()
					}
					line := fmt.Sprintf("[%d/%d] %-40s %3d chunks  %s", i+1, len(files), file.source, res.Chunks, res.DocumentID)
					switch {
					case err != nil:
						line = fmt.Sprintf("[%d/%d] %-40s failed: %v", i+1, len(files), file.source, err)
					case res.Duplicate:
						line += " (already stored)"
					}
					fmt.Println(line)
				} else if err != nil {
					fmt.Fprintf(stderr, "%s: %v\n", file.path, err)
				}
				if bar != nil {
					bar.Add(1)
				}
				if err != nil && !continueOnError {
					break
				}
			}
			if bar != nil && report.Failed > 0 {
				fmt.Fprintln(stderr)
			}
			if cli.structured() {
				if err := cli.printData(report); err != nil {
					return err
				}
			}
			if first == nil {
				return nil
			}
			if continueOnError && report.Failed > 0 {
				return &codedError{code: classify(first), err: fmt.Errorf("%d of %d files failed; the first: %w", report.Failed, len(files), first)}
			}
			return first
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&continueOnError, "continue-on-error", false, "upload the other files when one fails (exit non-zero at the end)")
	return cmd
}

// ingestOne uploads one file. Its result says what happened either way.
func ingestOne(cmd *cobra.Command, w dataClient, file ingestFile) (ingestResult, error) {
	res := ingestResult{File: file.path, Source: file.source}
	fail := func(err error) (ingestResult, error) {
		res.Error = &fileFail{Code: "error", Detail: err.Error()}
		var ae *apiError
		if errors.As(err, &ae) {
			res.Error = &fileFail{Status: ae.Status, Code: ae.Code, Detail: ae.Detail}
		}
		return res, err
	}
	data, err := os.ReadFile(file.path)
	if err != nil {
		return fail(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, filepath.Base(file.path)))
	h.Set("Content-Type", "application/octet-stream") // the worker sniffs by name and content
	part, _ := mw.CreatePart(h)
	part.Write(data)
	mw.WriteField("source", file.source)
	mw.Close()
	var doc struct {
		ragplane.Document
		Duplicate bool `json:"duplicate"`
	}
	if err := w.do(cmd.Context(), "POST", "/v1/documents", mw.FormDataContentType(), buf.Bytes(), &doc); err != nil {
		return fail(err)
	}
	res.DocumentID, res.Chunks, res.Duplicate, res.Status = doc.ID, doc.ChunkCount, doc.Duplicate, doc.Status
	return res, nil
}

// truncate cuts s to n runes, marking the cut with an ellipsis at the front (the end of a path
// says more than its start).
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}
