package ragplane

import "regexp"

// Plan is a commercial tier with default limits and settings: the "plan" layer of the cascade.
type Plan struct {
	// Name is the plan's id, e.g. "free", "pro", "enterprise".
	Name string `json:"name"`
	// Description is shown to operators.
	Description string `json:"description"`
	// Limits and Settings override the system defaults for tenants on this plan.
	Limits   Overrides `json:"limits"`
	Settings Overrides `json:"settings"`
}

var planNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_-]{1,39}$`)

// Validate checks and normalises the plan.
func (p *Plan) Validate() error {
	if !planNamePattern.MatchString(p.Name) {
		return FieldErrorf("name", "Plan name must be 2-40 characters of a-z, 0-9, _ and -, starting with a letter.")
	}
	if err := ValidateLimits("limits", p.Limits); err != nil {
		return err
	}
	return ValidateSettings("settings", p.Settings)
}
