"""Shop analytics: funnel, cohorts, LTV and ROI by source, revenue by segment and RFM cell."""
