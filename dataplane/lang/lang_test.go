package lang_test

import (
	"slices"
	"testing"

	"github.com/ragplane/ragplane"
	"github.com/ragplane/ragplane/dataplane/lang"
)

func TestDetect(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"The quick brown fox jumps over the lazy dog while the farmer watches from the porch.", "english"},
		{"Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde.", "french"},
		{"Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zuschaut.", "german"},
		{"El rápido zorro marrón salta sobre el perro perezoso mientras el granjero mira desde el porche.", "spanish"},
		{"Быстрая коричневая лиса прыгает через ленивую собаку, пока фермер смотрит с крыльца.", "russian"},
		{"敏捷的棕色狐狸跳过了懒狗，农夫在门廊上看着。", "simple"},
		{"Szybki brązowy lis przeskakuje nad leniwym psem, a rolnik patrzy z ganku.", "simple"},
		// English dense with foreign names: trigrams alone read it as German or Dutch.
		{"Gerhard Müller (born 3 November 1945) is a German former footballer, the most prolific scorer of the national team.", "english"},
		{"", lang.Default},
		{"12345 678", lang.Default},
	} {
		if got := lang.Detect(c.text); got != c.want {
			t.Errorf("Detect(%q) = %q, want %q", c.text, got, c.want)
		}
	}
}

func TestConfig(t *testing.T) {
	fr := "Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde."
	if got := lang.Config(lang.Auto, fr); got != "french" {
		t.Errorf("auto = %q", got)
	}
	if got := lang.Config("", fr); got != "french" {
		t.Errorf("empty = %q", got)
	}
	if got := lang.Config("german", fr); got != "german" {
		t.Errorf("fixed = %q", got)
	}
}

func TestConfigs(t *testing.T) {
	c := lang.Configs()
	for _, want := range []string{"simple", "english", "french", "norwegian"} {
		if !slices.Contains(c, want) {
			t.Errorf("Configs() lacks %q: %v", want, c)
		}
	}
	if !slices.IsSorted(c) {
		t.Errorf("not sorted: %v", c)
	}
}

// The settings layer lists the configurations without importing this package (and lingua's
// models); the two lists must be the same.
func TestSettingsListTheSameConfigs(t *testing.T) {
	if got := lang.Configs(); !slices.Equal(got, ragplane.TextSearchConfigs) {
		t.Errorf("lang.Configs() = %v\nragplane.TextSearchConfigs = %v", got, ragplane.TextSearchConfigs)
	}
}

func TestDetectAmong(t *testing.T) {
	three := []string{"english", "french", "german"}
	for _, c := range []struct {
		text  string
		among []string
		want  string
		sure  bool
	}{
		{"where do humpback whales breed", three, "english", true},
		{"où les baleines se reproduisent-elles", three, "french", true},
		{"wann backt der Bäcker das Brot", three, "german", true},
		{"Qui a écrit Les Misérables ?", []string{"english", "french"}, "french", true},
		{"who wrote the novel", []string{"english", "french"}, "english", true},
		{"where do whales breed", []string{"english"}, "", false}, // one language: nothing to choose
		{"keith urban", three, "", false},                         // two words: names read as any language
		{"tango dance history", []string{"english", "french", "german", "dutch", "danish", "spanish", "italian"}, "", false},
	} {
		got, sure := lang.DetectAmong(c.text, c.among)
		if sure != c.sure || got != c.want {
			t.Errorf("DetectAmong(%q, %v) = %q, %v; want %q, %v", c.text, c.among, got, sure, c.want, c.sure)
		}
	}
}
